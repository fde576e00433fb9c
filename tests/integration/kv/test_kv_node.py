"""The KV node against real storage on the session chain: writes replayed in log order, read
back through 0G's kv_* methods."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.kv.conftest import KvSetup, start_kv_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import ConfigError
from zgos.kv import StreamData, StreamWrite  # the public API


def test_a_write_is_readable_as_soon_as_write_returns(kv: KvSetup, chain: Chain, deployment: Deployment,
                                                      new_account: LocalAccount) -> None:
    with kv.client(chain, deployment, new_account) as client:
        written = client.write(StreamData(writes=(StreamWrite(kv.stream, b"greeting", b"hello"),
                                                  StreamWrite(kv.stream, b"big", b"x" * 300_000))))
        assert written.result == "Commit"
        entry = client.get(kv.stream, b"greeting")
        assert entry is not None and entry.data == b"hello" and entry.version == written.tx_seq
        big = client.get(kv.stream, b"big")
        assert big is not None and big.data == b"x" * 300_000
        assert [e.key for e in client.entries(kv.stream)] == [b"big", b"greeting"]
        assert client.get(kv.stream, b"missing") is None


def test_a_second_node_on_a_running_nodes_state_dir_is_refused_and_the_first_keeps_serving(
        kv: KvSetup, tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    with pytest.raises(ConfigError, match=r"kv is in use by another KV node \(pid \d+\)"):
        start_kv_node(tmp_path / "kv", chain, deployment, kv.storage.url, frozenset({kv.stream}))
    with kv.client(chain, deployment, new_account) as client:
        written = client.write(StreamData(writes=(StreamWrite(kv.stream, b"still", b"here"),)))
        entry = client.get(kv.stream, b"still")
        assert written.result == "Commit" and entry is not None and entry.data == b"here"
