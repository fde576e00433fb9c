"""The write transaction every service's SQLite store uses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction on ``db`` (a connection in autocommit mode, ``isolation_level=None``) that
    takes the write lock up front (``BEGIN IMMEDIATE``), so two writers never deadlock upgrading
    a read lock; committed at the end of the block, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
