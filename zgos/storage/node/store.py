"""The node's durable store: synced log entries, segment data, the sync cursor.

Choice: **SQLite in WAL mode** (one file, in the standard library, transactional) for the
index, and **one segment file per log entry** for the bytes.
* Durability: a segment is acknowledged only after its row's ``COMMIT`` returns, and its bytes
  are written to its segment file before that; both are then in the OS page cache, so they
  survive ``kill -9`` of the node (``synchronous=NORMAL``). With ``durable_fsync=True`` the
  segment file is fsynced before the row commits and SQLite runs ``synchronous=FULL``: both
  survive power loss. A crash between the two leaves bytes no row names: overwritten later.
* Atomicity: a batch of log entries and the sync cursor are written in one transaction, so a
  restart resumes exactly after the last stored entry, never skipping or duplicating one.
* Segment bytes sit at ``index * 256 KiB`` in ``segments/SEQ.dat`` (sparse for a shard node):
  a write is one ``pwrite``, a read one ``pread``, 15x cheaper to write than a 256 KiB BLOB
  (which SQLite writes twice, to the WAL and at the checkpoint). A row whose ``data`` is not
  empty holds its bytes itself: stores written before segment files, and parked segments.
Each thread gets its own connection; writes are serialised by SQLite's lock.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from zgos.storage.contracts import LogEntry
from zgos.storage.node.sqlitedb import SqliteDb
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT

SCHEMA = """
CREATE TABLE IF NOT EXISTS txs (
    seq INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    entry TEXT NOT NULL,
    finalized INTEGER NOT NULL DEFAULT 0,
    block INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS txs_root ON txs(root);
CREATE TABLE IF NOT EXISTS segments (
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    root BLOB NOT NULL,
    data BLOB NOT NULL,
    proof TEXT,
    PRIMARY KEY (seq, idx)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- segments of log entries a chain reorganisation removed, kept until the same file returns
CREATE TABLE IF NOT EXISTS parked (
    root BLOB NOT NULL,
    size INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    seg_root BLOB NOT NULL,
    data BLOB NOT NULL,
    proof TEXT,
    PRIMARY KEY (root, size, idx)
);
"""


IN_FILE = b""  # a segment row's data when its bytes are in the entry's segment file


@dataclass(frozen=True)
class TxRecord:
    entry: LogEntry
    finalized: bool


@dataclass(frozen=True)
class FileSlice:
    """``length`` bytes at ``offset`` of the file at ``path``."""

    path: Path
    offset: int
    length: int

    def read(self) -> bytes | None:
        """The bytes (None if the file went away or is short of them)."""
        try:
            with self.path.open("rb") as handle:
                data = os.pread(handle.fileno(), self.length, self.offset)
        except FileNotFoundError:
            return None
        return data if len(data) == self.length else None


def read_source(source: bytes | FileSlice | None) -> bytes | None:
    """The bytes of a ``Store.segment_source`` answer."""
    return source.read() if isinstance(source, FileSlice) else source


class Store:
    """SQLite-backed store of one storage node."""

    def __init__(self, path: Path, durable_fsync: bool = False) -> None:
        self.path = path
        self.segment_dir = path.parent / "segments"
        self.segment_dir.mkdir(parents=True, exist_ok=True)
        self.durable_fsync = durable_fsync
        self._files = threading.Lock()  # a segment file and its rows change together
        self._batches: dict[int, int] = {}  # seq -> open batches writing its segment file (kept while > 0)
        self._sqlite = SqliteDb(path, SCHEMA, durable_fsync)
        for table in ("segments", "parked"):  # stores written before proofs were kept
            columns = {row[1] for row in self._db().execute(f"PRAGMA table_info({table})")}
            if "proof" not in columns:
                self._db().execute(f"ALTER TABLE {table} ADD COLUMN proof TEXT")
        segment_columns = {row[1] for row in self._db().execute("PRAGMA table_info(segments)")}
        if "length" not in segment_columns:  # stores written before segment files
            self._db().execute("ALTER TABLE segments ADD COLUMN length INTEGER")

    def _db(self) -> sqlite3.Connection:
        return self._sqlite.conn()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._sqlite.tx()

    # --- log entries ---------------------------------------------------------------------

    def add_entries(self, entries: list[LogEntry], next_block: int, cursor_hash: bytes | None = None) -> None:
        """Store synced entries and advance the cursor atomically (idempotent per seq);
        ``cursor_hash`` is the hash of block ``next_block - 1`` (reorg detection)."""
        with self._tx() as db:
            for entry in entries:
                db.execute(
                    "INSERT OR IGNORE INTO txs(seq, root, entry, block) VALUES (?, ?, ?, ?)",
                    (entry.seq, entry.data_root, json.dumps(entry.to_json()), entry.block_number),
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('next_block', ?)", (str(next_block),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", ((cursor_hash or b"").hex(),))

    def next_block(self, default: int) -> int:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'next_block'").fetchone()
        return int(row[0]) if row else default

    def cursor_hash(self) -> bytes | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'cursor_hash'").fetchone()
        return bytes.fromhex(row[0]) if row and row[0] else None

    def rewind(self, block: int, cursor_hash: bytes | None) -> int:
        """Forget entries from ``block`` on (a reorganisation); park their segments so a file
        that comes back (same root and size) gets its data without a new upload."""
        with self._files, self._tx() as db:
            rows = db.execute("SELECT seq, root, entry FROM txs WHERE block >= ?", (block,)).fetchall()
            for seq, root, entry in rows:
                size = int(json.loads(entry)["length"])
                for index, seg_root, data, proof, length in db.execute(
                        "SELECT idx, root, data, proof, length FROM segments WHERE seq = ?", (seq,)).fetchall():
                    parked = read_source(self._source(seq, index, data, length))
                    if parked is not None:
                        db.execute("INSERT OR IGNORE INTO parked VALUES (?, ?, ?, ?, ?, ?)",
                                   (root, size, index, seg_root, parked, proof))
                db.execute("DELETE FROM segments WHERE seq = ?", (seq,))
                db.execute("DELETE FROM txs WHERE seq = ?", (seq,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('next_block', ?)", (str(block),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", ((cursor_hash or b"").hex(),))
            for seq, _, _ in rows:  # its seq may name another file after the reorganisation
                self._segment_file(seq).unlink(missing_ok=True)
        return len(rows)

    def unpark(self, root: bytes, size: int, seq: int) -> int:
        """Give log entry ``seq`` the parked segments of its file; return how many."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO segments(seq, idx, root, data, proof) "
                "SELECT ?, idx, seg_root, data, proof FROM parked WHERE root = ? AND size = ?",
                (seq, root, size),
            )
            db.execute("DELETE FROM parked WHERE root = ? AND size = ?", (root, size))
            return cursor.rowcount

    def next_seq(self) -> int:
        row = self._db().execute("SELECT MAX(seq) FROM txs").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def entries(self) -> list[LogEntry]:
        rows = self._db().execute("SELECT entry FROM txs ORDER BY seq").fetchall()
        return [LogEntry.from_json(json.loads(row[0])) for row in rows]

    def tx(self, seq: int) -> TxRecord | None:
        row = self._db().execute("SELECT entry, finalized FROM txs WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            return None
        return TxRecord(LogEntry.from_json(json.loads(row[0])), bool(row[1]))

    def txs_by_root(self, root: bytes) -> list[TxRecord]:
        rows = self._db().execute("SELECT seq FROM txs WHERE root = ? ORDER BY seq", (root,)).fetchall()
        return [record for (seq,) in rows if (record := self.tx(int(seq))) is not None]

    # --- segments ------------------------------------------------------------------------

    def put_segment(self, seq: int, index: int, root: bytes, data: bytes, proof: str | None = None) -> bool:
        """Store a segment (and its proof to the data root, JSON); False if it was already
        stored (the stored copy is kept). A batch of one (``SegmentBatch``)."""
        batch = SegmentBatch(self, seq)
        try:
            batch.add(index, root, data, proof)
        finally:
            stored = batch.commit()
        return stored == 1

    def _segment_file(self, seq: int) -> Path:
        return self.segment_dir / f"{seq}.dat"

    def _source(self, seq: int, index: int, data: bytes, length: int | None) -> bytes | FileSlice:
        """A row's segment bytes: its own, else where they sit in the segment file (a file gone
        or short is found out by whoever reads it: ``FileSlice.read``, the frame sender)."""
        if data or length is None:
            return bytes(data)
        return FileSlice(self._segment_file(seq), index * BYTES_PER_SEGMENT, length)

    def segment_proof(self, seq: int, index: int) -> str | None:
        row = self._db().execute("SELECT proof FROM segments WHERE seq = ? AND idx = ?", (seq, index)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def delete_segments(self, seq: int, indexes: list[int]) -> int:
        """Drop segments (pruning, or a segment found corrupted); return how many. The segment
        file goes with the last of its segments (the space of others stays until then)."""
        with self._files:
            with self._tx() as db:
                deleted = sum(db.execute("DELETE FROM segments WHERE seq = ? AND idx = ?", (seq, i)).rowcount
                              for i in indexes)
            if self.count_segments(seq) == 0 and not self._batches.get(seq):
                self._segment_file(seq).unlink(missing_ok=True)
        return deleted

    def unfinalize(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE txs SET finalized = 0 WHERE seq = ?", (seq,))

    def unfinalized_seqs(self) -> list[int]:
        return [int(r[0]) for r in self._db().execute("SELECT seq FROM txs WHERE finalized = 0 ORDER BY seq")]

    def get_meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def has_segment(self, seq: int, index: int) -> bool:
        row = self._db().execute("SELECT 1 FROM segments WHERE seq = ? AND idx = ?", (seq, index)).fetchone()
        return row is not None

    def segment(self, seq: int, index: int) -> bytes | None:
        return read_source(self.segment_source(seq, index))

    def segment_source(self, seq: int, index: int) -> bytes | FileSlice | None:
        """Segment ``index`` of ``seq``: its bytes when its row holds them, else the slice of
        its segment file to read (or send with ``sendfile``); None if not stored here."""
        row = self._db().execute("SELECT data, length FROM segments WHERE seq = ? AND idx = ?", (seq, index)).fetchone()
        return None if row is None else self._source(seq, index, row[0], row[1])

    def segment_rows(self, seq: int, indexes: range) -> dict[int, tuple[bytes | FileSlice, str | None]]:
        """The segments of ``indexes`` held here, in one read: each one's ``segment_source`` and
        ``segment_proof``."""
        if not indexes:
            return {}
        rows = self._db().execute("SELECT idx, data, length, proof FROM segments WHERE seq = ? AND idx BETWEEN ? AND ?",
                                  (seq, min(indexes[0], indexes[-1]), max(indexes[0], indexes[-1])))
        return {int(idx): (self._source(seq, int(idx), data, length), None if proof is None else str(proof))
                for idx, data, length, proof in rows if idx in indexes}

    def segment_indexes(self, seq: int) -> list[int]:
        rows = self._db().execute("SELECT idx FROM segments WHERE seq = ? ORDER BY idx", (seq,)).fetchall()
        return [int(row[0]) for row in rows]

    def segment_roots(self, seq: int) -> list[bytes]:
        rows = self._db().execute("SELECT root FROM segments WHERE seq = ? ORDER BY idx", (seq,)).fetchall()
        return [bytes(row[0]) for row in rows]

    def count_segments(self, seq: int) -> int:
        row = self._db().execute("SELECT COUNT(*) FROM segments WHERE seq = ?", (seq,)).fetchone()
        return int(row[0])

    def finalize(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE txs SET finalized = 1 WHERE seq = ?", (seq,))

    def copy_segments(self, source: int, target: int) -> None:
        """Give ``target`` the segments of ``source`` (same data root submitted again)."""
        with self._files:
            if self._segment_file(source).exists() and not self._segment_file(target).exists():
                shutil.copyfile(self._segment_file(source), self._segment_file(target))
            with self._tx() as db:
                db.execute(
                    "INSERT OR IGNORE INTO segments(seq, idx, root, data, proof, length) "
                    "SELECT ?, idx, root, data, proof, length FROM segments WHERE seq = ?",
                    (target, source),
                )


class SegmentBatch:
    """Segments of one log entry stored together: each one's bytes written into the entry's
    segment file as it comes (``add``), then, in ``commit``, one ``fsync`` of the file (on a
    ``durable_fsync`` store) and one transaction for all their rows. A row is never committed
    before its bytes are in the file (on disk, when durable), so whatever a node acknowledged
    after ``commit`` survives a crash; the file is not removed while a batch writes to it."""

    def __init__(self, store: Store, seq: int) -> None:
        self.store = store
        self.seq = seq
        self.rows: list[tuple[int, int, bytes, bytes, str | None, int]] = []
        self._handle: int | None = None

    def add(self, index: int, root: bytes, data: bytes, proof: str | None) -> bool:
        """Write segment ``index``'s bytes; False (nothing written) if it is held or in this batch."""
        store = self.store
        with store._files:
            if store.has_segment(self.seq, index) or any(row[1] == index for row in self.rows):
                return False
            if self._handle is None:
                self._handle = os.open(store._segment_file(self.seq), os.O_WRONLY | os.O_CREAT, 0o600)
                store._batches[self.seq] = store._batches.get(self.seq, 0) + 1
            os.pwrite(self._handle, data, index * BYTES_PER_SEGMENT)
        self.rows.append((self.seq, index, root, IN_FILE, proof, len(data)))
        return True

    def commit(self) -> int:
        """Make the added segments held; the number that were not held already."""
        if self._handle is None:
            return 0
        try:
            if self.store.durable_fsync:
                os.fsync(self._handle)
            with self.store._tx() as db:
                return sum(db.execute("INSERT OR IGNORE INTO segments(seq, idx, root, data, proof, length) "
                                      "VALUES (?, ?, ?, ?, ?, ?)", row).rowcount for row in self.rows)
        finally:
            os.close(self._handle)
            self._handle = None
            self.rows = []
            with self.store._files:
                self.store._batches[self.seq] -= 1
                if not self.store._batches[self.seq]:
                    del self.store._batches[self.seq]
