"""The broker's durable request log (SQLite, WAL): nonces, billed requests, receipts.

Owner: the broker process. Every admitted request is written (status ``reserved``) before it
is forwarded, so its nonce can never be replayed, even across a restart; a served request is
updated to ``served`` with its usage, fee and signed response **before** the answer's last
byte leaves the broker; a failed one becomes ``failed`` (never billed). Receipts keep the
highest cumulative total each user signed. WAL with ``synchronous=NORMAL`` survives a
``kill -9`` of the process (committed pages are in the OS cache). On restart, ``reserved``
rows are requests that were in flight when the process died: they are marked ``failed``.

A served request may be partial (a stream cut by the client or the model server): it is billed
and signed for what was forwarded, like a complete one. Per user, the receipts table also keeps
what the chain has paid (``settled``, from the broker's own settlement events), since when the
receipt has been owed (``due_since``, for oldest-debt-first settlement) and whether the last
settlement found the sub-account empty (``no_balance``: skipped until the user funds it again).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zgos.compute.spec.settlement import DueReceipt
from zgos.compute.spec.vouchers import Receipt
from zgos.runtime.sqlite import write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    nonce TEXT NOT NULL,
    max_fee TEXT NOT NULL,
    status TEXT NOT NULL,              -- reserved | served | failed
    input_tokens INTEGER,
    output_tokens INTEGER,
    fee TEXT,
    signed_response TEXT,
    created_at REAL NOT NULL,
    UNIQUE (user, nonce)
);
CREATE TABLE IF NOT EXISTS receipts (
    user TEXT PRIMARY KEY,
    total TEXT NOT NULL,
    signature BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""
# Columns added to receipts after the first release (added in place to older databases).
RECEIPT_COLUMNS = {
    "settled": "TEXT NOT NULL DEFAULT '0'",
    "due_since": "REAL NOT NULL DEFAULT 0",
    "no_balance": "INTEGER NOT NULL DEFAULT 0",
}


class NonceReplayed(Exception):
    """The (user, nonce) pair was already used."""


@dataclass(frozen=True)
class UserTotals:
    served: int  # cumulative fees of served requests
    inflight: int  # max fees of admitted, unanswered requests
    requests: int  # number of served requests


class RequestLog:
    """Thread-safe access to the broker's SQLite database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(receipts)")}
        for name, kind in RECEIPT_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE receipts ADD COLUMN {name} {kind}")
        self._lock = threading.Lock()
        # Requests that were in flight when a previous process died were never answered.
        self._db.execute("UPDATE requests SET status='failed' WHERE status='reserved'")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, write_transaction(self._db) as db:
            yield db

    def reserve(self, request_hash: str, user: str, nonce: int, max_fee: int) -> None:
        """Record an admitted request; raise ``NonceReplayed`` if its nonce (or hash) was used."""
        try:  # one statement in autocommit mode: atomic and durable on its own
            with self._lock:
                self._db.execute(
                    "INSERT INTO requests (request_hash, user, nonce, max_fee, status, created_at)"
                    " VALUES (?, ?, ?, ?, 'reserved', ?)",
                    (request_hash, user, str(nonce), str(max_fee), time.time()),
                )
        except sqlite3.IntegrityError:
            raise NonceReplayed(f"nonce {nonce} of {user} was already used") from None

    def complete(self, request_hash: str, input_tokens: int, output_tokens: int, fee: int,
                 signed_response: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE requests SET status='served', input_tokens=?, output_tokens=?, fee=?,"
                " signed_response=? WHERE request_hash=? AND status='reserved'",
                (input_tokens, output_tokens, str(fee), signed_response, request_hash),
            )

    def fail(self, request_hash: str) -> None:
        with self._lock:
            self._db.execute("UPDATE requests SET status='failed' WHERE request_hash=? AND status='reserved'",
                       (request_hash,))

    def signed_response(self, request_hash: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT signed_response FROM requests WHERE request_hash=? AND status='served'",
                (request_hash,),
            ).fetchone()
        return None if row is None else str(row[0])

    def totals(self) -> dict[str, UserTotals]:
        """Per user: served fees, reserved max fees and served count (loaded at start)."""
        with self._lock:
            rows = self._db.execute("SELECT user, status, fee, max_fee FROM requests").fetchall()
        served: dict[str, int] = {}
        inflight: dict[str, int] = {}
        count: dict[str, int] = {}
        for user, status, fee, max_fee in rows:
            if status == "served":
                served[user] = served.get(user, 0) + int(fee)
                count[user] = count.get(user, 0) + 1
            elif status == "reserved":
                inflight[user] = inflight.get(user, 0) + int(max_fee)
        users = set(served) | set(inflight)
        return {u: UserTotals(served.get(u, 0), inflight.get(u, 0), count.get(u, 0)) for u in users}

    def save_receipt(self, receipt: Receipt, signature: bytes) -> bool:
        """Keep ``receipt`` if it is the user's highest so far; return whether it was kept. A
        receipt that makes a settled user owe again starts its ``due_since`` now."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT total, settled, due_since FROM receipts WHERE user=?",
                             (receipt.user,)).fetchone()
            if row is None:
                db.execute("INSERT INTO receipts (user, total, signature, updated_at, due_since)"
                           " VALUES (?, ?, ?, ?, ?)", (receipt.user, str(receipt.total), signature, now, now))
                return True
            total, settled, due_since = int(row[0]), int(row[1]), float(row[2])
            if total >= receipt.total:
                return False
            db.execute("UPDATE receipts SET total=?, signature=?, updated_at=?, due_since=? WHERE user=?",
                       (str(receipt.total), signature, now, due_since if total > settled else now, receipt.user))
            return True

    def receipts(self, provider: str) -> list[tuple[Receipt, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT user, total, signature FROM receipts").fetchall()
        return [(Receipt(user, provider, int(total)), bytes(sig)) for user, total, sig in rows]

    def due(self, provider: str) -> list[DueReceipt]:
        """Receipts above what the chain has paid, except those last found without balance."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user, total, signature, settled, due_since FROM receipts WHERE no_balance=0").fetchall()
        return [DueReceipt(Receipt(user, provider, int(total)), bytes(sig), float(since))
                for user, total, sig, settled, since in rows if int(total) > int(settled)]

    def settled(self) -> dict[str, int]:
        """What the chain has paid each user with a receipt, as last recorded."""
        with self._lock:
            rows = self._db.execute("SELECT user, settled FROM receipts").fetchall()
        return {user: int(settled) for user, settled in rows}

    def record_settled(self, user: str, settled: int) -> None:
        with self._lock:
            self._db.execute("UPDATE receipts SET settled=? WHERE user=?", (str(settled), user))

    def set_no_balance(self, users: list[str], no_balance: bool) -> None:
        with self._lock:
            self._db.executemany("UPDATE receipts SET no_balance=? WHERE user=?",
                                 [(int(no_balance), user) for user in users])

    def drop_receipt(self, user: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM receipts WHERE user=?", (user,))
