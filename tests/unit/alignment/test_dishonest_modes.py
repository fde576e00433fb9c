"""Test-only dishonest modes (issue 17 §6): off by default, refused without the test switch and
on any chain but the devnet; the storage node's "drop-half" mode hides every odd segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from zgos.chain.dishonest import DISHONEST_ENV, check_dishonest_mode
from zgos.chain.networks import DEVNET_CHAIN_ID
from zgos.core.errors import ConfigError
from zgos.storage.node.dishonest import DISHONEST_MODES, ForgetfulStore
from zgos.storage.node.store import Store

GALILEO_CHAIN_ID = 16602


def test_a_dishonest_mode_runs_only_in_tests_on_the_devnet(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_dishonest_mode(None, DISHONEST_MODES, GALILEO_CHAIN_ID) is None, "honest is always allowed"
    monkeypatch.delenv(DISHONEST_ENV, raising=False)
    with pytest.raises(ConfigError, match="only for tests"):
        check_dishonest_mode("drop-half", DISHONEST_MODES, DEVNET_CHAIN_ID)
    monkeypatch.setenv(DISHONEST_ENV, "1")
    with pytest.raises(ConfigError, match="refused on chain 16602"):
        check_dishonest_mode("drop-half", DISHONEST_MODES, GALILEO_CHAIN_ID)
    with pytest.raises(ConfigError, match="unknown dishonest mode"):
        check_dishonest_mode("lie", DISHONEST_MODES, DEVNET_CHAIN_ID)
    assert check_dishonest_mode("drop-half", DISHONEST_MODES, DEVNET_CHAIN_ID) == "drop-half"


def test_a_forgetful_store_keeps_claiming_segments_it_no_longer_serves(tmp_path: Path) -> None:
    honest, forgetful = Store(tmp_path / "a.sqlite"), ForgetfulStore(tmp_path / "b.sqlite")
    for store in (honest, forgetful):
        for index in range(4):
            store.put_segment(7, index, bytes(32), bytes([index]) * 8)
    assert [honest.segment(7, i) for i in range(4)] == [bytes([i]) * 8 for i in range(4)]
    assert [forgetful.segment(7, i) for i in range(4)] == [bytes(8), None, bytes([2]) * 8, None]
    assert forgetful.segment_indexes(7) == [0, 1, 2, 3], "it still claims every segment"
    assert sorted(forgetful.segment_rows(7, range(4))) == [0, 2], "nor does it send them in a run of frames"
    assert sorted(honest.segment_rows(7, range(4))) == [0, 1, 2, 3]
