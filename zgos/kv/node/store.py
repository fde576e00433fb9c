"""The KV node's durable state: the streams' history in SQLite, indexed in memory, read as of
any version.

Layout (``zgos.kv.node.layout``): a row per log entry seen (``t_tx``), which for a committed
transaction also holds its values, concatenated, and the list of keys it wrote; a row per
access-control op (``t_acl``); the replay cursor (``t_misc``). 0G's ``sqlite_db_statements.rs``
(storage.md §6) writes a row per written key instead, but inserting a SQLite row costs about as
much as decoding a key from the log (3.5-4.5 us against 4-6 us, measured): a row per key alone
held replay under half the speed of decoding, which issue 15 asks it to reach. So SQLite gets a
row per transaction, and key lookups are served from an index in memory
(``zgos.kv.node.index``), rebuilt from the rows' key lists when the store opens (no network, no
decoding of transactions); a value is a point read of its transaction's row, sliced. With it,
``bench kv`` measures replay at 0.5-0.6x of decoding alone (0.2-0.4x with a row per key).

A transaction's row, ops, result and the cursor move are one SQLite transaction with
``synchronous=FULL`` (a batch of entries shares one), so after ``kill -9`` the node resumes at
exactly the next transaction and the state equals a fresh replay's. Inside a store transaction
the index already answers with its own records (the next transactions of a batch read them);
other threads wait on the store's lock until it ends, and a rollback drops those records from
the index again, so other threads only ever see committed state. The answers of
``at(version)`` are those of ``zgos.kv.spec.state.StateAt``; tests hold the two to the same
answers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from zgos.kv.node.index import KeyIndex, Location
from zgos.kv.node.layout import RowWrites, compute_row, open_layout, parse_row_writes
from zgos.kv.spec.replay import Commit
from zgos.kv.spec.state import (
    ADMIN_OPS,
    KEY_KIND_OPS,
    KEY_WRITER_OPS,
    LATEST,
    STREAM_WRITER_OPS,
    Entry,
)
from zgos.kv.spec.stream import AclOp

SQLITE_MAX_INT = (1 << 63) - 1  # versions are u64 on the wire; SQLite integers are signed
NO_ENTRY_YET = -1  # next_seq before the first log entry at or after first_block is seen

TxRow = tuple[int, int, str | None, bytes | None, bytes | None]  # seq, block, result, data, writes


def _in(ops: frozenset[AclOp]) -> str:
    return "(" + ",".join(str(int(op)) for op in sorted(ops)) + ")"


@dataclass(frozen=True)
class Cursor:
    next_seq: int  # NO_ENTRY_YET: whichever entry comes first
    next_block: int
    parent_hash: bytes | None  # hash of block next_block - 1 when it was read


class KvStore:
    """One SQLite file and its index; safe to share between the replayer and RPC threads."""

    def __init__(self, path: Path, first_block: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        open_layout(self.db)
        self.db.execute("INSERT OR IGNORE INTO t_misc VALUES (0, ?, ?, NULL)", (NO_ENTRY_YET, first_block))
        self.lock = threading.RLock()  # the replayer holds it across a batch of transactions
        self.depth = 0  # nesting of ``transaction``: only the outermost commits
        # Inside a transaction, rows and the cursor are buffered and written in one go before
        # anything reads ``t_tx`` (``_flush``) and before the commit.
        self.pending_rows: list[TxRow] = []
        # What the open transaction added to the index, dropped again if it rolls back; after
        # a rewind in it, the index is rebuilt instead.
        self.uncommitted: list[tuple[int, RowWrites]] = []
        self.rewound = False
        self.index = self.load_index()
        self.next_version = self._stored_next_version()  # a new record's seq is at least this
        self.latest = StoreAt(self, SQLITE_MAX_INT)

    def load_index(self) -> KeyIndex:
        """The index of every committed write, from the rows' key lists."""
        index = KeyIndex()
        for seq, listing in self.db.execute("SELECT seq, writes FROM t_tx WHERE writes IS NOT NULL ORDER BY seq"):
            index.add(seq, parse_row_writes(listing))
        return index

    def _stored_next_version(self) -> int:
        newest = self.db.execute("SELECT MAX(seq) FROM t_tx").fetchone()[0]
        return 0 if newest is None else int(newest) + 1

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction (one fsync); nested ones join the outermost, which commits
        them all or none. Reads from other threads wait until it ends; if it rolls back, so
        do its changes to the index."""
        with self.lock:
            if self.depth:
                self.depth += 1
                try:
                    yield self.db
                finally:
                    self.depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self.depth, next_version = 1, self.next_version
            try:
                yield self.db
                self._flush()
                self.db.execute("COMMIT")
            except BaseException:
                self._roll_back()
                self.next_version = next_version
                raise
            finally:
                self.depth = 0
                self.uncommitted.clear()
                self.rewound = False

    def _roll_back(self) -> None:
        """Undo the open transaction in SQLite and in the index."""
        self.pending_rows.clear()
        try:
            if self.db.in_transaction:  # a failed COMMIT may have rolled back already
                self.db.execute("ROLLBACK")
        finally:
            if self.rewound:
                self.index = self.load_index()
            elif self.uncommitted:
                self.index.drop_from(self.uncommitted[0][0], [stream_key for _, writes in self.uncommitted
                                                              for stream_key in writes.stream_keys()])

    def _flush(self) -> None:
        """Write the buffered rows and cursor (inside the open transaction)."""
        if not self.pending_rows:
            return
        self.db.executemany("INSERT INTO t_tx VALUES (?, ?, ?, ?, ?)", self.pending_rows)
        self.db.execute("UPDATE t_misc SET next_seq = ? WHERE id = 0", (self.pending_rows[-1][0] + 1,))
        self.pending_rows.clear()

    def one(self, sql: str, *args: object, acl_only: bool = False) -> tuple[object, ...] | None:
        """The first row of a query; ``acl_only`` queries (``t_acl`` alone) need no flush."""
        with self.lock:
            if not acl_only:
                self._flush()
            row: tuple[object, ...] | None = self.db.execute(sql, args).fetchone()
            return row

    # --- the cursor and results ------------------------------------------------------

    def cursor(self) -> Cursor:
        row = self.one("SELECT next_seq, next_block, parent_hash FROM t_misc WHERE id = 0")
        assert row is not None
        next_seq, next_block, parent = row
        return Cursor(int(str(next_seq)), int(str(next_block)), parent if isinstance(parent, bytes) else None)

    def result(self, seq: int) -> str | None:
        row = self.one("SELECT result FROM t_tx WHERE seq = ?", seq)
        return None if row is None or row[0] is None else str(row[0])

    def record(self, seq: int, block: int, result: str | None, commit: Commit | None = None) -> None:
        """Store the outcome of log entry ``seq`` and move the cursor past it, atomically;
        entries are recorded in log order (``ValueError`` for one not after the last)."""
        with self.lock:
            if self.depth:  # the open transaction takes it (what ``transaction`` would do, faster)
                self._record(seq, block, result, commit)
                return
            with self.transaction():
                self._record(seq, block, result, commit)

    def _record(self, seq: int, block: int, result: str | None, commit: Commit | None) -> None:
        if seq < self.next_version:
            raise ValueError(f"log entry {seq} is not after the last one stored ({self.next_version - 1})")
        self.next_version = seq + 1
        data = listing = None
        if commit is not None and commit.writes:
            data, writes, listing = compute_row(commit.writes)
            self.uncommitted.append((seq, writes))
            self.index.add(seq, writes)
        if commit is not None and commit.controls:
            self.db.executemany("INSERT INTO t_acl VALUES (?, ?, ?, ?, ?, ?)",
                                [(r.stream_id, r.key, r.account, seq, int(r.op), r.operator) for r in commit.controls])
        self.pending_rows.append((seq, block, result, data, listing))

    def advance_blocks(self, next_block: int, parent_hash: bytes) -> None:
        with self.transaction() as db:
            db.execute("UPDATE t_misc SET next_block = ?, parent_hash = ? WHERE id = 0", (next_block, parent_hash))

    def rewind(self, block: int, parent_hash: bytes | None) -> int:
        """Forget everything from ``block`` on (a reorganisation); return the entries dropped."""
        with self.transaction() as db:
            self._flush()
            row = db.execute("SELECT MIN(seq), COUNT(*) FROM t_tx WHERE block >= ?", (block,)).fetchone()
            first, dropped = row if row[0] is not None else (None, 0)
            if first is not None:
                listings = db.execute("SELECT writes FROM t_tx WHERE seq >= ? AND writes IS NOT NULL", (first,))
                keys = [stream_key for (listing,) in listings for stream_key in parse_row_writes(listing).stream_keys()]
                for table, column in (("t_acl", "version"), ("t_tx", "seq")):
                    db.execute(f"DELETE FROM {table} WHERE {column} >= ?", (first,))
                db.execute("UPDATE t_misc SET next_seq = ? WHERE id = 0", (first,))
                self.rewound = True  # a rollback rebuilds the index: it cannot undo this drop
                self.index.drop_from(first, keys)
                self.next_version = first
            db.execute("UPDATE t_misc SET next_block = ?, parent_hash = ? WHERE id = 0", (block, parent_hash))
            return int(dropped)

    def counts(self) -> dict[str, int]:
        with self.lock:
            self._flush()
            rows = self.db.execute("SELECT result, COUNT(*) FROM t_tx WHERE result IS NOT NULL "
                                   "GROUP BY result").fetchall()
        counts: dict[str, int] = {}
        for result, n in rows:
            name = str(result).split(":")[0]
            counts[name] = counts.get(name, 0) + int(n)
        return counts

    def at(self, version: int = LATEST) -> StoreAt:
        return self.latest if version >= SQLITE_MAX_INT else StoreAt(self, version)

    # --- values ----------------------------------------------------------------------

    def _slice(self, version: int, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` of the values in version ``version``'s row."""
        self._flush()  # the row may be one of this transaction's own
        row = self.db.execute("SELECT substr(data, ?, ?) FROM t_tx WHERE seq = ?", (offset + 1, length, version))
        return bytes(row.fetchone()[0])

    def value(self, location: Location) -> bytes:
        version, offset, length = location
        return self._slice(version, offset, length) if length else b""

    def values(self, locations: list[Location]) -> list[bytes]:
        """The values at ``locations``, reading each row once (the span its values cover)."""
        spans: dict[int, tuple[int, int]] = {}
        for version, offset, length in locations:
            if length:
                start, end = spans.get(version, (offset, offset + length))
                spans[version] = (min(start, offset), max(end, offset + length))
        read = {version: self._slice(version, start, end - start) for version, (start, end) in spans.items()}
        values = []
        for version, offset, length in locations:
            start = spans[version][0] if length else offset
            values.append(read[version][offset - start:offset - start + length] if length else b"")
        return values


@dataclass(frozen=True)
class StoreAt:
    """The stored state as of ``version``: a ``KvView`` for replay and the reads of the RPC."""

    store: KvStore
    version: int

    def get(self, stream_id: bytes, key: bytes) -> Entry | None:
        with self.store.lock:
            location = self.store.index.find(stream_id, key, self.version)
            return None if location is None else Entry(key, location[0], self.store.value(location))

    def _neighbour(self, stream_id: bytes, key: bytes | None, inclusive: bool, reverse: bool) -> Entry | None:
        with self.store.lock:
            found = next(self.store.index.keys_from(stream_id, key, self.version, inclusive=inclusive,
                                                    reverse=reverse), None)
            return None if found is None else self.get(stream_id, found)

    def next(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        """The first key after ``key`` (or at it, if ``inclusive``) with its value as of this version."""
        return self._neighbour(stream_id, key, inclusive, reverse=False)

    def prev(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        return self._neighbour(stream_id, key, inclusive, reverse=True)

    def first(self, stream_id: bytes) -> Entry | None:
        return self._neighbour(stream_id, None, True, reverse=False)

    def last(self, stream_id: bytes) -> Entry | None:
        return self._neighbour(stream_id, None, True, reverse=True)

    def page(self, stream_id: bytes, start: bytes, inclusive: bool, limit: int) -> list[Entry]:
        """Up to ``limit`` keys from ``start`` on (past it unless ``inclusive``), in byte order,
        each with its value as of this version."""
        with self.store.lock:
            index = self.store.index
            keys = list(islice(index.keys_from(stream_id, start, self.version, inclusive=inclusive), limit))
            locations = [index.find(stream_id, key, self.version) for key in keys]
            found = [location for location in locations if location is not None]
            values = self.store.values(found)
        return [Entry(key, location[0], value) for key, location, value in zip(keys, found, values, strict=True)]

    def latest_version(self, stream_id: bytes, key: bytes) -> int | None:
        with self.store.lock:
            location = self.store.index.find(stream_id, key, self.version)
        return None if location is None else location[0]

    def _latest_op(self, ops: frozenset[AclOp], stream_id: bytes, *, key: bytes | None = None,
                   account: bytes | None = None) -> AclOp | None:
        where = "stream_id = ? AND version <= ?" + (" AND key = ?" if key is not None else "") + \
            (" AND account = ?" if account is not None else "")
        args = [a for a in (stream_id, self.version, key, account) if a is not None]
        row = self.store.one(f"SELECT op FROM t_acl WHERE {where} AND op IN {_in(ops)} "
                             "ORDER BY version DESC LIMIT 1", *args, acl_only=True)
        return None if row is None else AclOp(int(str(row[0])))

    def is_new_stream(self, stream_id: bytes) -> bool:
        return self.store.one("SELECT 1 FROM t_acl WHERE stream_id = ? AND version <= ? LIMIT 1",
                              stream_id, self.version, acl_only=True) is None

    def is_admin(self, account: bytes, stream_id: bytes) -> bool:
        return self._latest_op(ADMIN_OPS, stream_id, account=account) == AclOp.GRANT_ADMIN

    def is_special_key(self, stream_id: bytes, key: bytes) -> bool:
        return self._latest_op(KEY_KIND_OPS, stream_id, key=key) == AclOp.SET_KEY_TO_SPECIAL

    def is_writer_of_stream(self, account: bytes, stream_id: bytes) -> bool:
        return self._latest_op(STREAM_WRITER_OPS, stream_id, account=account) == AclOp.GRANT_WRITER

    def is_writer_of_key(self, account: bytes, stream_id: bytes, key: bytes) -> bool:
        return self._latest_op(KEY_WRITER_OPS, stream_id, key=key, account=account) == AclOp.GRANT_SPECIAL_WRITER

    def is_special_writer_of_any_key(self, account: bytes, stream_id: bytes) -> bool:
        with self.store.lock:
            keys = self.store.db.execute(f"SELECT DISTINCT key FROM t_acl WHERE stream_id = ? AND account = ? "
                                         f"AND version <= ? AND op IN {_in(KEY_WRITER_OPS)}",
                                         (stream_id, account, self.version)).fetchall()
        return any(self.is_writer_of_key(account, stream_id, bytes(k)) for (k,) in keys)
