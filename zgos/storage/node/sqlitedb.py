"""One SQLite file shared by a node's threads: a connection per thread, WAL journal, and
write transactions that take the lock up front (``BEGIN IMMEDIATE``) so two writers never
deadlock on a lock upgrade."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from zgos.runtime.sqlite import write_transaction

BUSY_TIMEOUT_S = 30


class SqliteDb:
    def __init__(self, path: Path, schema: str, durable_fsync: bool = False) -> None:
        self.path = path
        self._sync_mode = "FULL" if durable_fsync else "NORMAL"
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn().executescript(schema)

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._sync_mode}")
            self._local.db = db
        return db

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection (``write_transaction``)."""
        return write_transaction(self.conn())
