"""A run of frames reads its segments in one query (``Store.segment_rows``): the answer is what
reading each segment on its own (``segment_source``, ``segment_proof``) gives, for any run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.storage.node.store import Store

SEQ = 3


@settings(max_examples=25, deadline=None)
@given(held=st.sets(st.integers(0, 40), max_size=25), proven=st.sets(st.integers(0, 40)),
       first=st.integers(0, 45), count=st.integers(0, 12), step=st.integers(1, 6))
def test_a_run_of_rows_is_what_reading_each_segment_gives(held: set[int], proven: set[int], first: int, count: int,
                                                          step: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        for index in sorted(held):
            proof = f'{{"segment": {index}}}' if index in proven else None
            store.put_segment(SEQ, index, bytes([index]) * 32, bytes([index]) * 1000, proof)
        run = range(first, first + count * step, step)
        expected = {i: (source, store.segment_proof(SEQ, i)) for i in run
                    if (source := store.segment_source(SEQ, i)) is not None}
        assert store.segment_rows(SEQ, run) == expected
        assert store.segment_rows(SEQ + 1, run) == {}, "another file's run"
