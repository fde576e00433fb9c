"""Fast path for a file's Merkle tree: segment roots computed on every core.

Segments are independent, so the file is cut into contiguous runs of segments, each read with
``os.pread`` and hashed in parallel: by threads calling the native hasher (which releases the
GIL, ``zgos.storage.fasthash``) when it is built, else by worker processes running the Python
definition. The result is the same ``FileTree`` as ``FileTree.from_bytes``; the tests compare
both on random inputs. Small files are hashed in the calling thread.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from zgos.storage.fasthash import full_segment_roots, native
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import compute_segment_count
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, compute_leaf_hashes

PARALLEL_MIN_BYTES = 8 * 1024 * 1024  # below this, one process is faster than forking
SEGMENTS_PER_TASK = 32  # 8 MiB of reading and hashing per task


def _segment_roots_of_file(path: str, first: int, last: int) -> list[bytes]:
    """Roots of full segments ``[first, last)`` of the file at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, (last - first) * BYTES_PER_SEGMENT, first * BYTES_PER_SEGMENT)
    finally:
        os.close(fd)
    return full_segment_roots(data)


def _workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def build_file_tree(path: Path, workers: int | None = None) -> FileTree:
    """The ``FileTree`` of the file at ``path``, hashed in parallel when large."""
    size = path.stat().st_size
    if size == 0:
        return FileTree.from_bytes(b"")  # raises InvalidSubmission: empty files are rejected
    n_data = compute_segment_count(size)
    full = n_data - 1
    workers = workers or _workers()
    ranges = [(i, min(i + SEGMENTS_PER_TASK, full)) for i in range(0, full, SEGMENTS_PER_TASK)]
    if size < PARALLEL_MIN_BYTES or workers == 1:
        roots = _segment_roots_of_file(str(path), 0, full) if full else []
    elif native is not None:
        with ThreadPoolExecutor(max_workers=workers) as threads:
            parts = threads.map(_segment_roots_of_file, [str(path)] * len(ranges), *zip(*ranges, strict=True))
            roots = [root for part in parts for root in part]
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parts = pool.map(_segment_roots_of_file, [str(path)] * len(ranges), *zip(*ranges, strict=True))
            roots = [root for part in parts for root in part]
    with path.open("rb") as handle:
        handle.seek(full * BYTES_PER_SEGMENT)
        last = compute_leaf_hashes(handle.read())
    return FileTree.build(size, roots, last)


def build_file_tree_from_bytes(data: bytes, workers: int | None = None) -> FileTree:
    """The ``FileTree`` of in-memory ``data`` (parallel through a temporary file when large)."""
    if len(data) < PARALLEL_MIN_BYTES or (workers or _workers()) == 1:
        return FileTree.from_bytes(data)
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="zgos-tree-") as tmp:
        tmp.write(data)
        tmp.flush()
        return build_file_tree(Path(tmp.name), workers)
