"""The miner's own store (``miner.sqlite`` beside the node's store).

It holds the sealed replica of the flow this node holds, one 4 KiB sealed piece per row keyed
by seal index, and the answers submitted per epoch. As in 0G's split of ``flow_db``/``data_db``,
miner-specific data lives apart from the shareable store; the node's reads keep using its
unsealed store, so they never change. Sealed pieces and answers are durable: an answer is
recorded as ``sending`` before its transaction, so a restart never answers an epoch twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from zgos.storage.node.sqlitedb import SqliteDb
from zgos.storage.spec.pora import SEALS_PER_LOAD

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS seals (
    idx INTEGER PRIMARY KEY,
    context BLOB NOT NULL,
    data BLOB            -- NULL: the piece is all zeros (padding), nothing to mine
);
CREATE TABLE IF NOT EXISTS answers (
    epoch INTEGER PRIMARY KEY,
    context BLOB NOT NULL,
    recall INTEGER NOT NULL,
    state TEXT NOT NULL,  -- sending, accepted, rejected, unknown
    detail TEXT NOT NULL DEFAULT '',
    reward TEXT NOT NULL DEFAULT '0',
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
ANSWER_COLUMNS = "epoch, context, recall, state, detail, reward, at"

SealRow = tuple[int, bytes, bytes | None]  # (seal index, sealing context digest, sealed data or None)


class MinerStore:
    """SQLite (WAL) store of the sealed pieces and the answers, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sqlite = SqliteDb(path, SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._sqlite.conn()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._sqlite.tx()

    def check_miner(self, miner_id: bytes) -> None:
        """Sealed pieces belong to one miner id: a different key starts from scratch."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'miner_id'").fetchone()
            if row is not None and row[0] != miner_id.hex():
                log.warning("miner key changed: dropping the pieces sealed for the previous miner id")
                db.execute("DELETE FROM seals")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('miner_id', ?)", (miner_id.hex(),))

    def put_seals(self, rows: list[SealRow]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO seals(idx, context, data) VALUES (?, ?, ?)", rows)

    def sealed_indexes(self, start: int, end: int) -> set[int]:
        rows = self._db().execute("SELECT idx FROM seals WHERE idx >= ? AND idx < ?", (start, end)).fetchall()
        return {int(r[0]) for r in rows}

    def count_seals(self) -> tuple[int, int]:
        """(pieces sealed with data, all-zero pieces recorded)."""
        row = self._db().execute("SELECT COUNT(data), COUNT(*) FROM seals").fetchone()
        return int(row[0]), int(row[1]) - int(row[0])

    def load(self, load_index: int) -> list[tuple[bytes, bytes] | None]:
        """The 64 sealed pieces of a 256 KiB load: ``(context digest, sealed data)`` or None."""
        first = load_index * SEALS_PER_LOAD
        rows = self._db().execute(
            "SELECT idx, context, data FROM seals WHERE idx >= ? AND idx < ? AND data IS NOT NULL",
            (first, first + SEALS_PER_LOAD),
        ).fetchall()
        out: list[tuple[bytes, bytes] | None] = [None] * SEALS_PER_LOAD
        for idx, context, data in rows:
            out[int(idx) - first] = (bytes(context), bytes(data))
        return out

    def delete_seal(self, index: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM seals WHERE idx = ?", (index,))

    def answer(self, epoch: int) -> dict[str, Any] | None:
        row = self._db().execute(f"SELECT {ANSWER_COLUMNS} FROM answers WHERE epoch = ?", (epoch,)).fetchone()
        return None if row is None else _answer_json(row)

    def record_answer(self, epoch: int, context: bytes, recall: int, state: str, detail: str = "",
                      reward: int = 0) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO answers({ANSWER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (epoch, context, recall, state, detail, str(reward), time.time()),
            )

    def forget_answer(self, epoch: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM answers WHERE epoch = ?", (epoch,))

    def answers(self) -> list[dict[str, Any]]:
        rows = self._db().execute(f"SELECT {ANSWER_COLUMNS} FROM answers ORDER BY epoch").fetchall()
        return [_answer_json(row) for row in rows]


def _answer_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """An answer as ``miner_getStatus`` shows it (``lastReward``)."""
    epoch, context, recall, state, detail, reward, at = row
    return {"epoch": int(epoch), "context": "0x" + bytes(context).hex(), "recallPosition": int(recall),
            "state": state, "detail": detail, "reward": int(reward), "at": float(at)}
