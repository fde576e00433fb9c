"""A signer's durable cell store: one file per blob, written atomically and fsynced.

Layout: ``<root>/<blob id hex>.cells`` = header (magic, epoch u64, cell count u32) followed by
fixed-size records ``row u32 | column u32 | cell 2048 B | proof 48 B`` (big-endian). A blob's
file is written to a temporary name, fsynced, renamed and the directory fsynced before the
signer answers, so an acknowledged (signed) blob survives ``kill -9``.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

from zgos.da.spec.blob import BYTES_PER_CELL, BYTES_PER_PROOF
from zgos.da.spec.encoding import Cell

MAGIC = b"ZGDACEL1"
HEADER = struct.Struct(">8sQI")
RECORD_PREFIX = struct.Struct(">II")
RECORD_BYTES = RECORD_PREFIX.size + BYTES_PER_CELL + BYTES_PER_PROOF
SUFFIX = ".cells"


class CellStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for stale in self.root.glob("*.tmp"):
            stale.unlink()

    def _path(self, blob_id: bytes) -> Path:
        return self.root / f"{blob_id.hex()}{SUFFIX}"

    def has(self, blob_id: bytes) -> bool:
        return self._path(blob_id).exists()

    def count(self) -> int:
        return sum(1 for _ in self.root.glob(f"*{SUFFIX}"))

    def put(self, blob_id: bytes, epoch: int, cells: Iterable[Cell]) -> None:
        cells = list(cells)
        parts = [HEADER.pack(MAGIC, epoch, len(cells))]
        for cell in cells:
            parts += [RECORD_PREFIX.pack(cell.row, cell.column), cell.data, cell.proof]
        path = self._path(blob_id)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        with self._lock:
            with open(tmp, "wb") as f:
                f.write(b"".join(parts))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def get(self, blob_id: bytes) -> list[Cell] | None:
        """Every stored cell of the blob, or None if this store does not hold it."""
        try:
            raw = self._path(blob_id).read_bytes()
        except FileNotFoundError:
            return None
        magic, _epoch, count = HEADER.unpack_from(raw)
        if magic != MAGIC or len(raw) != HEADER.size + count * RECORD_BYTES:
            return None
        cells = []
        for i in range(count):
            offset = HEADER.size + i * RECORD_BYTES
            row, column = RECORD_PREFIX.unpack_from(raw, offset)
            start = offset + RECORD_PREFIX.size
            cells.append(
                Cell(row, column, raw[start : start + BYTES_PER_CELL],
                     raw[start + BYTES_PER_CELL : start + BYTES_PER_CELL + BYTES_PER_PROOF])
            )
        return cells
