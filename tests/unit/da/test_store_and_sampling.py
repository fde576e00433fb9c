"""The signer's cell store (durable, exact) and the sampler's confidence bound."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.da.signer.store import CellStore
from zgos.da.spec.encoding import Cell
from zgos.da.spec.sampling import samples_per_row, unavailability_bound

cells = st.lists(
    st.builds(
        Cell,
        st.integers(0, 255),
        st.integers(0, 127),
        # 2048 bytes from 32 random ones: five whole random cells exceed hypothesis's input budget
        st.binary(min_size=32, max_size=32).map(lambda seed: seed * 64),
        st.binary(min_size=48, max_size=48),
    ),
    max_size=5,
)


@settings(max_examples=20, deadline=None)
@given(cells)
def test_stored_cells_come_back_exactly_after_reopening(tmp_path_factory: object, stored: list[Cell]) -> None:
    root = Path(tmp_path_factory.mktemp("store"))  # type: ignore[attr-defined]
    CellStore(root).put(b"\x01" * 32, 7, stored)
    reopened = CellStore(root)
    assert reopened.get(b"\x01" * 32) == stored
    assert reopened.get(b"\x02" * 32) is None
    assert reopened.count() == 1


def test_a_truncated_file_reads_as_missing(tmp_path: Path) -> None:
    store = CellStore(tmp_path)
    store.put(b"\x03" * 32, 1, [Cell(0, 0, bytes(2048), bytes(48))])
    path = next(tmp_path.glob("*.cells"))
    path.write_bytes(path.read_bytes()[:-10])
    assert store.get(b"\x03" * 32) is None


@given(st.integers(1, 63))
def test_confidence_grows_with_samples_and_beats_two_to_the_minus_k(k: int) -> None:
    bound = unavailability_bound(k)
    assert bound <= 2.0**-k
    assert unavailability_bound(k + 1) < bound
    assert unavailability_bound(64) == 0.0


@given(st.integers(1, 10_000), st.integers(1, 256))
def test_samples_spread_evenly_over_the_rows_earlier_rows_first(total: int, rows: int) -> None:
    per_row = samples_per_row(total, rows)
    assert len(per_row) == rows and sum(per_row) == total
    assert max(per_row) - min(per_row) <= 1
    assert per_row == sorted(per_row, reverse=True)
