"""Encode a blob into rows, KZG commitments, cells and cell proofs; recover it from cells.

``Encoder`` runs the per-row ckzg work of ``zgos.da.spec.kzg`` over a process pool (ckzg holds
the GIL, so only processes use both cores); each worker loads the trusted setup once.
``workers=0`` encodes in the calling process (small blobs, tests). ``Encoder.start`` queues a
blob's commitments, then its cells and proofs, behind every blob started before it (the pool
runs tasks in submission order), so several blobs in flight keep both cores busy while each
still gets its commitments, hence its blob id, as early as the queue allows. The layout rules
live in ``zgos.da.spec.blob``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from zgos.core.errors import ZgError
from zgos.da.spec import kzg
from zgos.da.spec.blob import (
    CELLS_NEEDED_PER_ROW,
    CELLS_PER_ROW,
    BlobError,
    BlobHeader,
    pack_rows,
    unpack_rows,
)

WARM_WAIT_S = 0.05
PARENT_POLL_S = 1.0
Progress = Callable[[int], None]  # called with the number of rows just finished


class InvalidBlob(ZgError):
    """A blob cannot be encoded or decoded (size limits, bad padding)."""


class InsufficientCells(ZgError):
    """Fewer than half of a row's cells are available: the blob cannot be recovered."""


class InvalidCell(ZgError):
    """A cell's KZG proof does not verify against its row commitment."""


@dataclass(frozen=True)
class Cell:
    """One cell of the extended blob: row ``row``, column ``column``, with its KZG proof."""

    row: int
    column: int
    data: bytes
    proof: bytes


@dataclass(frozen=True)
class EncodedBlob:
    """A blob after encoding: header (size + commitments) and every cell with its proof."""

    header: BlobHeader
    cells: tuple[tuple[bytes, ...], ...]  # [row][column]
    proofs: tuple[tuple[bytes, ...], ...]  # [row][column]

    def column_cells(self, columns: Iterable[int]) -> list[Cell]:
        """Every row's cells of ``columns`` (what one signer stores)."""
        wanted = sorted(set(columns))
        return [
            Cell(row, column, self.cells[row][column], self.proofs[row][column])
            for row in range(self.header.rows)
            for column in wanted
        ]


@dataclass(frozen=True)
class EncodingJob:
    """One blob's encoding, started on the pool: a future per row commitment, then a future per
    row's cells and proofs (``Encoder.start``)."""

    size: int
    commitments: tuple[Future[bytes], ...]
    extensions: tuple[Future[tuple[kzg.Cells, kzg.Proofs]], ...]

    def header(self) -> BlobHeader:
        """Wait for the row commitments only (~5x cheaper than the cells)."""
        return BlobHeader(self.size, tuple(bytes(f.result()) for f in self.commitments))

    def encoded(self) -> EncodedBlob:
        """Wait for every row's cells and proofs."""
        extended = [f.result() for f in self.extensions]
        return EncodedBlob(
            self.header(),
            tuple(tuple(cells) for cells, _ in extended),
            tuple(tuple(proofs) for _, proofs in extended),
        )

    def cancel(self) -> None:
        """Drop the rows not started yet (a failed blob frees the pool for the next ones)."""
        for future in self.commitments:
            future.cancel()
        for extension in self.extensions:
            extension.cancel()


def _done(fn: Callable[[bytes], Any], row: bytes) -> Future[Any]:
    """``fn(row)`` computed now, as a finished future (the in-process encoder)."""
    future: Future[Any] = Future()
    future.set_result(fn(row))
    return future


def _init_worker() -> None:
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    kzg.prover_setup()


def _exit_with_parent(parent: int) -> None:
    """A worker outlives a parent killed with SIGKILL; this ends it within a second."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _warm() -> None:
    time.sleep(WARM_WAIT_S)  # keep this worker busy so the next task starts another one


def _recover_task(args: tuple[list[int], list[bytes]]) -> list[bytes]:
    return kzg.recover_row(*args)[0]


def verify_cells(header: BlobHeader, cells: Sequence[Cell]) -> bool:
    """Batch-verify ``cells`` against the header's row commitments."""
    if any(not 0 <= c.row < header.rows or not 0 <= c.column < CELLS_PER_ROW for c in cells):
        return False
    return kzg.verify_cells(
        [header.commitments[c.row] for c in cells],
        [c.column for c in cells],
        [c.data for c in cells],
        [c.proof for c in cells],
    )


class Encoder:
    """Blob encoder/decoder over ``workers`` processes (default: one per CPU; 0 = in-process)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool: Executor | None = None
        self._warming: list[Future[None]] = []
        self._order = threading.Lock()  # one blob's tasks are queued together
        if self.workers > 0:
            # spawn, not fork: the parent runs gRPC and web3 threads that fork would copy.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
            # Start every worker now, in the background (each loads the trusted setup once),
            # so the first blob does not pay for it.
            self._warming = [self._pool.submit(_warm) for _ in range(self.workers)]
        else:
            kzg.prover_setup()

    def wait_ready(self) -> None:
        """Block until every worker process has started and loaded the trusted setup."""
        for future in self._warming:
            future.result()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _map(self, fn: Callable[[Any], Any], items: list[Any], progress: Progress | None) -> list[Any]:
        results: list[Any] = []
        iterator: Iterable[Any] = self._pool.map(fn, items) if self._pool is not None else map(fn, items)
        for result in iterator:
            results.append(result)
            if progress is not None:
                progress(1)
        return results

    @staticmethod
    def pack(data: bytes) -> list[bytes]:
        """``pack_rows`` with ``InvalidBlob`` for empty/oversized data."""
        try:
            return pack_rows(data)
        except BlobError as exc:
            raise InvalidBlob(str(exc)) from None

    def encode(self, data: bytes, progress: Progress | None = None) -> EncodedBlob:
        """Pack, commit and extend ``data``; raises ``InvalidBlob`` for empty/oversized data."""
        encoded = self._map(kzg.encode_row, self.pack(data), progress)
        header = BlobHeader(len(data), tuple(bytes(c) for c, _, _ in encoded))
        return EncodedBlob(
            header,
            tuple(tuple(cells) for _, cells, _ in encoded),
            tuple(tuple(proofs) for _, _, proofs in encoded),
        )

    def _submit(self, fn: Callable[[bytes], Any], row: bytes) -> Future[Any]:
        return self._pool.submit(fn, row) if self._pool is not None else _done(fn, row)

    def start(self, size: int, rows: list[bytes]) -> EncodingJob:
        """Queue the commitments of ``rows`` (packed from ``size`` bytes), then their cells and
        proofs, behind every blob started before; returns at once (``workers=0``: when done)."""
        with self._order:
            commitments = tuple(self._submit(kzg.commit_row, row) for row in rows)
            extensions = tuple(self._submit(kzg.compute_row_cells, row) for row in rows)
        return EncodingJob(size, commitments, extensions)

    def decode(
        self, header: BlobHeader, cells: Iterable[Cell], *, verified: bool = False,
        progress: Progress | None = None,
    ) -> bytes:
        """The blob's exact bytes from any >= 64 distinct cells of every row.

        Cells are verified against ``header`` first unless ``verified``; raises ``InvalidCell``
        if any proof fails, ``InsufficientCells`` naming the first short row.
        """
        cells = list(cells)
        if not verified and not verify_cells(header, cells):
            raise InvalidCell("a cell does not match its row's KZG commitment")
        by_row: list[dict[int, bytes]] = [{} for _ in range(header.rows)]
        for cell in cells:
            by_row[cell.row][cell.column] = cell.data
        for row, have in enumerate(by_row):
            if len(have) < CELLS_NEEDED_PER_ROW:
                raise InsufficientCells(
                    f"row {row} has {len(have)} of {CELLS_PER_ROW} cells; "
                    f"recovery needs at least {CELLS_NEEDED_PER_ROW}",
                    "too many signers are unreachable or withholding data",
                )
        tasks = [_recovery_input(have) for have in by_row]
        rows = self._map(_row_from_cells, tasks, progress)
        try:
            return unpack_rows(rows, header.size)
        except BlobError as exc:
            raise InvalidBlob(f"recovered blob is malformed: {exc}") from None


def _recovery_input(have: Mapping[int, bytes]) -> tuple[list[int], list[bytes]]:
    columns = sorted(have)
    return columns, [have[c] for c in columns]


def _row_from_cells(args: tuple[list[int], list[bytes]]) -> bytes:
    """The row's original 4096 field elements: the first 64 cells of its extension."""
    columns, cells = args
    if columns[:CELLS_NEEDED_PER_ROW] == list(range(CELLS_NEEDED_PER_ROW)):
        return b"".join(cells[:CELLS_NEEDED_PER_ROW])
    return b"".join(_recover_task(args)[:CELLS_NEEDED_PER_ROW])
