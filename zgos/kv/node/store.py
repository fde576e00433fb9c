"""The KV node's durable state: the streams' history in SQLite, read as of any version.

Tables follow 0G's ``sqlite_db_statements.rs`` (storage.md §6), with values kept in the row
instead of as byte ranges into a second copy of the flow:

* ``t_stream``: every committed write (stream, key, version, value bytes);
* ``t_acl``: every committed access-control op (stream, key, account, version, op, operator);
* ``t_tx``: every log entry seen, with its block and, for this node's transactions, the result;
* ``t_misc``: the replay cursor (next log entry, next block to read, that block's parent hash).

A transaction's writes, ops, result and the cursor move are one SQLite transaction with
``synchronous=FULL``, so after ``kill -9`` the node resumes at exactly the next transaction and
the state equals a fresh replay's. The answers of ``at(version)`` are those of
``zgos.kv.spec.state.StateAt``; tests hold the two to the same answers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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

SCHEMA = """
CREATE TABLE IF NOT EXISTS t_stream (
    stream_id BLOB NOT NULL, key BLOB NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (stream_id, key, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS t_acl (
    stream_id BLOB NOT NULL, key BLOB NOT NULL, account BLOB NOT NULL, version INTEGER NOT NULL,
    op INTEGER NOT NULL, operator BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS acl_account ON t_acl (stream_id, account, version);
CREATE INDEX IF NOT EXISTS acl_key ON t_acl (stream_id, key, version);
CREATE TABLE IF NOT EXISTS t_tx (seq INTEGER PRIMARY KEY, block INTEGER NOT NULL, result TEXT);
CREATE TABLE IF NOT EXISTS t_misc (
    id INTEGER PRIMARY KEY CHECK (id = 0), next_seq INTEGER NOT NULL, next_block INTEGER NOT NULL,
    parent_hash BLOB);
"""
SQLITE_MAX_INT = (1 << 63) - 1
NO_ENTRY_YET = -1  # next_seq before the first log entry at or after first_block is seen  # versions are u64 on the wire; SQLite integers are signed


def _version(version: int) -> int:
    return min(version, SQLITE_MAX_INT)


def _in(ops: frozenset[AclOp]) -> str:
    return "(" + ",".join(str(int(op)) for op in sorted(ops)) + ")"


@dataclass(frozen=True)
class Cursor:
    next_seq: int  # NO_ENTRY_YET: whichever entry comes first
    next_block: int
    parent_hash: bytes | None  # hash of block next_block - 1 when it was read


class KvStore:
    """One SQLite file; safe to share between the replayer and RPC threads."""

    def __init__(self, path: Path, first_block: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO t_misc VALUES (0, ?, ?, NULL)", (NO_ENTRY_YET, first_block))
        self.lock = threading.RLock()  # the replayer holds it across a batch of transactions
        self.depth = 0  # nesting of ``transaction``: only the outermost commits
        # Inside a transaction, values, results and the cursor are buffered and written in one
        # go before anything reads those tables (``_flush``) and before the commit.
        self.pending_values: list[tuple[bytes, bytes, int, bytes]] = []
        self.pending_results: list[tuple[int, int, str | None]] = []

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction (one fsync); nested ones join the outermost, which commits
        them all or none. Reads from other threads wait until it ends."""
        with self.lock:
            if self.depth:
                self.depth += 1
                try:
                    yield self.db
                finally:
                    self.depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self.depth = 1
            try:
                yield self.db
                self._flush()
            except BaseException:
                self.pending_values.clear()
                self.pending_results.clear()
                self.db.execute("ROLLBACK")
                raise
            finally:
                self.depth = 0
            self.db.execute("COMMIT")

    def _flush(self) -> None:
        """Write the buffered values, results and cursor (inside the open transaction)."""
        if not self.pending_results:
            return
        self.db.executemany("INSERT OR REPLACE INTO t_stream VALUES (?, ?, ?, ?)", self.pending_values)
        self.db.executemany("INSERT OR REPLACE INTO t_tx VALUES (?, ?, ?)", self.pending_results)
        self.db.execute("UPDATE t_misc SET next_seq = ? WHERE id = 0", (self.pending_results[-1][0] + 1,))
        self.pending_values.clear()
        self.pending_results.clear()

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
        """Store the outcome of log entry ``seq`` and move the cursor past it, atomically."""
        with self.transaction() as db:
            if commit is not None:
                self.pending_values.extend((w.stream_id, w.key, seq, w.data) for w in commit.writes)
            if commit is not None and commit.controls:
                db.executemany("INSERT INTO t_acl VALUES (?, ?, ?, ?, ?, ?)",
                               [(r.stream_id, r.key, r.account, seq, int(r.op), r.operator) for r in commit.controls])
            self.pending_results.append((seq, block, result))

    def advance_blocks(self, next_block: int, parent_hash: bytes) -> None:
        with self.transaction() as db:
            db.execute("UPDATE t_misc SET next_block = ?, parent_hash = ? WHERE id = 0", (next_block, parent_hash))

    def rewind(self, block: int, parent_hash: bytes | None) -> int:
        """Forget everything from ``block`` on (a reorganisation); return the entries dropped."""
        with self.transaction() as db:
            row = db.execute("SELECT MIN(seq), COUNT(*) FROM t_tx WHERE block >= ?", (block,)).fetchone()
            first, dropped = row if row[0] is not None else (None, 0)
            if first is not None:
                for table, column in (("t_stream", "version"), ("t_acl", "version"), ("t_tx", "seq")):
                    db.execute(f"DELETE FROM {table} WHERE {column} >= ?", (first,))
                db.execute("UPDATE t_misc SET next_seq = ? WHERE id = 0", (first,))
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
        return StoreAt(self, _version(version))


@dataclass(frozen=True)
class StoreAt:
    """The stored state as of ``version``: a ``KvView`` for replay and the reads of the RPC."""

    store: KvStore
    version: int

    def _entry(self, sql: str, *args: object) -> Entry | None:
        row = self.store.one(sql, *args)
        return None if row is None else Entry(bytes(row[0]), int(str(row[1])), bytes(row[2]))  # type: ignore[arg-type]

    def get(self, stream_id: bytes, key: bytes) -> Entry | None:
        return self._entry("SELECT key, version, data FROM t_stream WHERE stream_id = ? AND key = ? "
                           "AND version <= ? ORDER BY version DESC LIMIT 1", stream_id, key, self.version)

    def next(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        """The first key after ``key`` (or at it, if ``inclusive``) with its value as of this version."""
        row = self.store.one(f"SELECT key FROM t_stream WHERE stream_id = ? AND key {'>=' if inclusive else '>'} ? "
                             "AND version <= ? ORDER BY key ASC LIMIT 1", stream_id, key, self.version)
        return None if row is None else self.get(stream_id, bytes(row[0]))  # type: ignore[arg-type]

    def prev(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        row = self.store.one(f"SELECT key FROM t_stream WHERE stream_id = ? AND key {'<=' if inclusive else '<'} ? "
                             "AND version <= ? ORDER BY key DESC LIMIT 1", stream_id, key, self.version)
        return None if row is None else self.get(stream_id, bytes(row[0]))  # type: ignore[arg-type]

    def first(self, stream_id: bytes) -> Entry | None:
        row = self.store.one("SELECT key FROM t_stream WHERE stream_id = ? AND version <= ? ORDER BY key ASC LIMIT 1",
                             stream_id, self.version)
        return None if row is None else self.get(stream_id, bytes(row[0]))  # type: ignore[arg-type]

    def last(self, stream_id: bytes) -> Entry | None:
        row = self.store.one("SELECT key FROM t_stream WHERE stream_id = ? AND version <= ? ORDER BY key DESC LIMIT 1",
                             stream_id, self.version)
        return None if row is None else self.get(stream_id, bytes(row[0]))  # type: ignore[arg-type]

    def page(self, stream_id: bytes, start: bytes, inclusive: bool, limit: int) -> list[Entry]:
        """Up to ``limit`` keys from ``start`` on (past it unless ``inclusive``), in byte order,
        each with its value as of this version."""
        with self.store.lock:
            self.store._flush()
            rows = self.store.db.execute(
                "SELECT s.key, s.version, s.data FROM t_stream s JOIN ("
                f"  SELECT key, MAX(version) AS v FROM t_stream WHERE stream_id = ? AND key {'>=' if inclusive else '>'} ?"
                "   AND version <= ? GROUP BY key ORDER BY key LIMIT ?) m"
                " ON s.stream_id = ? AND s.key = m.key AND s.version = m.v ORDER BY s.key",
                (stream_id, start, self.version, limit, stream_id)).fetchall()
        return [Entry(bytes(key), int(version), bytes(data)) for key, version, data in rows]

    def latest_version(self, stream_id: bytes, key: bytes) -> int | None:
        entry = self.get(stream_id, key)
        return None if entry is None else entry.version

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


Answers = dict[tuple[str, tuple[object, ...]], object]
ACL_QUESTIONS = frozenset({"is_new_stream", "is_admin", "is_special_key", "is_writer_of_stream",
                           "is_writer_of_key", "is_special_writer_of_any_key"})


class MemoView:
    """A view that remembers its answers: while one transaction replays, the state it reads
    does not change, so each question is asked of SQLite once."""

    def __init__(self, view: StoreAt, acl_answers: Answers | None = None) -> None:
        self.view = view
        self.answers: Answers = {}
        # Access-control answers may be shared beyond one transaction by a caller that drops
        # them whenever a commit changes access control (``Replayer``).
        self.acl_answers = self.answers if acl_answers is None else acl_answers

    def __getattr__(self, name: str) -> Callable[..., object]:
        ask = getattr(self.view, name)
        answers = self.acl_answers if name in ACL_QUESTIONS else self.answers

        def remembered(*args: object) -> object:
            if (name, args) not in answers:
                answers[(name, args)] = ask(*args)
            return answers[(name, args)]
        setattr(self, name, remembered)  # later lookups find it without __getattr__
        return remembered
