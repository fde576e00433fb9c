"""``Budget``: what the local proxy has spent and topped up, kept so the caps survive restarts.

Owner: the proxy process (one per user account and data dir). State: an SQLite file in the
user's state dir with every receipt increment (``spend``) and every automatic top-up
(``top_up``) of the last day; older rows are pruned. A row is committed before the receipt is
signed or the top-up sent (WAL, ``synchronous=NORMAL``: durable across a kill of the process),
so a restart never forgets money that left. Requests in flight hold their worst case in memory
only: a restart ends them, and a hold also expires by itself after ``hold_s`` (a stream whose
client vanished before it started never releases it otherwise).

The rules are ``zgos.compute.spec.limits``; this module adds the clock, the lock and the disk.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zgos.compute.spec.limits import (
    DAY_S,
    HOUR_S,
    Cap,
    Charge,
    SpendCaps,
    compute_committed,
    validate_charge,
)
from zgos.compute.user.wire import SpendingSummary

SPEND = "spend"
TOP_UP = "top_up"
SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    kind TEXT NOT NULL,        -- spend | top_up
    at REAL NOT NULL,          -- unix time
    provider TEXT NOT NULL,
    amount TEXT NOT NULL       -- neuron (may exceed 64 bits)
);
CREATE INDEX IF NOT EXISTS charges_at ON charges (at);
"""


@dataclass(frozen=True)
class Hold:
    """The worst case of one request in flight, held against the spend caps."""

    id: int
    amount: int
    expires_at: float


class Budget:
    """Spend caps over signed receipts and a daily cap over automatic top-ups (thread-safe)."""

    def __init__(self, path: Path, caps: SpendCaps, top_up_per_day: int | None = None, *, hold_s: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.caps = caps.caps()
        self.top_up_cap = None if top_up_per_day is None else Cap("day", DAY_S, top_up_per_day)
        self.hold_s = hold_s
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        now = clock()
        self._db.execute("DELETE FROM charges WHERE at <= ?", (now - DAY_S,))
        self._charges: dict[str, list[Charge]] = {SPEND: [], TOP_UP: []}
        for kind, at, amount in self._db.execute("SELECT kind, at, amount FROM charges ORDER BY at"):
            self._charges.setdefault(kind, []).append(Charge(float(at), int(amount)))
        self._holds: dict[int, Hold] = {}
        self._ids = itertools.count(1)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _held(self, now: float) -> int:
        for hold in [h for h in self._holds.values() if h.expires_at <= now]:
            del self._holds[hold.id]
        return sum(h.amount for h in self._holds.values())

    def _record(self, kind: str, provider: str, amount: int, now: float) -> None:
        self._db.execute("INSERT INTO charges (kind, at, provider, amount) VALUES (?, ?, ?, ?)",
                         (kind, now, provider, str(amount)))
        charges = self._charges[kind]
        charges.append(Charge(now, amount))
        if charges[0].at_s <= now - DAY_S:  # keep a day in memory; the table is pruned at start
            self._charges[kind] = [c for c in charges if c.at_s > now - DAY_S]

    def hold(self, amount: int) -> Hold:
        """Hold ``amount`` (a request's signed worst case) if every spend cap allows it; raise
        ``limits.CapReached`` otherwise. Nothing may be signed before this returns."""
        with self._lock:
            now = self._clock()
            validate_charge(self._charges[SPEND], now, self.caps, self._held(now), amount)
            hold = Hold(next(self._ids), amount, now + self.hold_s)
            self._holds[hold.id] = hold
            return hold

    def release(self, hold: Hold) -> None:
        with self._lock:
            self._holds.pop(hold.id, None)

    def record_spend(self, provider: str, amount: int) -> None:
        """A receipt for ``amount`` more is about to be signed: commit it first."""
        with self._lock:
            self._record(SPEND, provider, amount, self._clock())

    def take_top_up(self, provider: str, amount: int) -> None:
        """Commit an automatic top-up of ``amount`` before it is sent, if the daily top-up cap
        allows it; raise ``limits.CapReached`` otherwise."""
        with self._lock:
            now = self._clock()
            if self.top_up_cap is not None:
                validate_charge(self._charges[TOP_UP], now, [self.top_up_cap], 0, amount)
            self._record(TOP_UP, provider, amount, now)

    def summary(self) -> SpendingSummary:
        """Spent and topped up per window, holds and caps (for ``GET /v1/spending``)."""
        with self._lock:
            now = self._clock()
            spends, top_ups = self._charges[SPEND], self._charges[TOP_UP]
            return {
                "spent": {"hour": compute_committed(spends, now, HOUR_S), "day": compute_committed(spends, now, DAY_S)},
                "caps": {cap.name: cap.limit for cap in self.caps},
                "held": self._held(now),
                "topped_up_today": compute_committed(top_ups, now, DAY_S),
                "top_up_cap_per_day": None if self.top_up_cap is None else self.top_up_cap.limit,
            }
