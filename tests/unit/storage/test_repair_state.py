"""The repair worker's persisted state: round trip, and a damaged file means a rescan, not a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from zgos.storage.repairer import RepairState


@given(st.integers(min_value=0, max_value=2**40), st.lists(st.binary(min_size=32, max_size=32), unique=True))
def test_state_round_trips(next_block: int, roots: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "repairer.json"
        RepairState(next_block, roots).save(path)
        assert RepairState.load(path, first_block=7) == RepairState(next_block, roots)
        assert not path.with_name(path.name + ".partial").exists()


def test_a_missing_or_damaged_state_file_rescans_from_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "repairer.json"
    assert RepairState.load(path, first_block=42) == RepairState(42)
    for damaged in ("", "{", '{"nextBlock": "x", "roots": []}', '{"nextBlock": 5, "roots": ["0xzz"]}', "[]"):
        path.write_text(damaged)
        assert RepairState.load(path, first_block=42) == RepairState(42), damaged
