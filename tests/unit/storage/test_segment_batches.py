"""A storage node's segment batches on a real SQLite store and real segment files: the segments
of one request are written as they come and held only after one fsync and one commit; a batch
keeps its segment file even when the file's last held segment is deleted meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zgos.storage.node.store import SegmentBatch, Store
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT

SEQ = 7


def segment(index: int) -> bytes:
    return bytes([index + 1]) * BYTES_PER_SEGMENT


def test_a_batch_is_held_only_after_its_one_fsync_and_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store.sqlite", durable_fsync=True)
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counted(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted)
    assert store.put_segment(SEQ, 0, b"r0", segment(0))
    assert len(fsyncs) == 1, "a lone segment is a batch of one"
    batch = SegmentBatch(store, SEQ)
    assert [batch.add(i, b"r%d" % i, segment(i), None) for i in (1, 2, 3, 0, 2)] == [True, True, True, False, False]
    assert store.segment_indexes(SEQ) == [0], "written, not yet held"
    before_commit = len(fsyncs)
    assert batch.commit() == 3
    assert len(fsyncs) == before_commit + 1, "one fsync for the whole batch"
    assert store.segment_indexes(SEQ) == [0, 1, 2, 3]
    assert all(store.segment(SEQ, i) == segment(i) for i in range(4))
    assert SegmentBatch(store, SEQ).commit() == 0, "an empty batch writes nothing"


def test_a_batch_keeps_its_segment_file_when_the_last_held_segment_goes(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite")
    store.put_segment(SEQ, 0, b"r0", segment(0))
    batch = SegmentBatch(store, SEQ)
    assert batch.add(1, b"r1", segment(1), None)
    assert store.delete_segments(SEQ, [0]) == 1
    assert batch.commit() == 1
    assert store.segment(SEQ, 1) == segment(1), "its bytes were not removed with the file's last row"
    assert store.delete_segments(SEQ, [1]) == 1
    assert not (store.segment_dir / f"{SEQ}.dat").exists(), "the file goes with its last segment"
