"""The auditor's journal: rounds, findings and challenges, durable across ``kill -9``.

SQLite with ``synchronous=FULL``: a row is on disk when its write returns. A finding is written
before it is published and marked published after its report transaction, so a restart
publishes what a crash left unpublished (the registry refuses the same evidence twice, which
the publisher reads as "already published"). A challenge is written as *pending* before its
transaction is sent and gets its id after; a restart resolves a pending challenge from the
chain's ``ChallengeOpened`` events rather than opening another.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zgos.alignment.auditor.findings import Observation
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding

SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (n INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL,
                                   checks INTEGER NOT NULL DEFAULT 0, findings INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS findings (id INTEGER PRIMARY KEY, round INTEGER NOT NULL, subject TEXT NOT NULL,
                                     kind INTEGER NOT NULL, check_name TEXT NOT NULL, finding INTEGER NOT NULL,
                                     delta INTEGER NOT NULL, detail TEXT NOT NULL, evidence BLOB NOT NULL,
                                     root BLOB, published INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS challenges (row INTEGER PRIMARY KEY, id INTEGER UNIQUE, operator TEXT NOT NULL,
                                       tx_seq INTEGER NOT NULL, sent_at_block INTEGER NOT NULL,
                                       status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slashes (digest BLOB PRIMARY KEY, provider TEXT NOT NULL, faults INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class StoredFinding:
    id: int
    round: int
    observation: Observation
    root: bytes | None
    published: bool


@dataclass(frozen=True)
class StoredChallenge:
    row: int
    challenge_id: int | None  # None: sent, not yet seen on chain
    operator: str
    tx_seq: int
    sent_at_block: int
    status: str  # pending | open | answered | slashed | dropped


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, *args: object) -> int:
        with self._lock, self._db:
            return int(self._db.execute(sql, args).lastrowid or 0)

    # --- rounds ------------------------------------------------------------------------------

    def begin_round(self) -> int:
        """The next round's number (a round a crash interrupted is left unfinished)."""
        with self._lock:
            last = self._db.execute("SELECT COALESCE(MAX(n), 0) FROM rounds").fetchone()[0]
        n = int(last) + 1
        self._write("INSERT INTO rounds (n, started) VALUES (?, ?)", n, time.time())
        return n

    def finish_round(self, n: int, checks: int, findings: int) -> None:
        self._write("UPDATE rounds SET finished = ?, checks = ?, findings = ? WHERE n = ?", time.time(), checks, findings, n)

    def rounds(self) -> tuple[int, int, float | None]:
        """(rounds begun, rounds finished, when the last one finished)."""
        with self._lock:
            begun, finished, last = self._db.execute(
                "SELECT COUNT(*), COUNT(finished), MAX(finished) FROM rounds").fetchone()
        return int(begun), int(finished), last

    # --- findings ----------------------------------------------------------------------------

    def add_finding(self, round_n: int, observation: Observation, document: bytes) -> int:
        """Keep a finding and the evidence ``document`` it will be published with."""
        assert observation.finding is not None
        return self._write(
            "INSERT INTO findings (round, subject, kind, check_name, finding, delta, detail, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", round_n, observation.subject, int(observation.kind), observation.check,
            int(observation.finding), observation.delta, observation.detail, document)

    def evidence_of(self, finding_id: int) -> bytes:
        with self._lock:
            return bytes(self._db.execute("SELECT evidence FROM findings WHERE id = ?", (finding_id,)).fetchone()[0])

    def set_root(self, finding_id: int, root: bytes) -> None:
        self._write("UPDATE findings SET root = ? WHERE id = ?", root, finding_id)

    def mark_published(self, finding_id: int) -> None:
        self._write("UPDATE findings SET published = 1 WHERE id = ?", finding_id)

    def findings(self, subject: str | None = None, unpublished: bool = False, limit: int = 100) -> list[StoredFinding]:
        sql = "SELECT id, round, subject, kind, check_name, finding, delta, detail, evidence, root, published FROM findings"
        where, args = [], []
        if subject is not None:
            where.append("lower(subject) = lower(?)")
            args.append(subject)
        if unpublished:
            where.append("published = 0")
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_stored_finding(row) for row in rows]

    # --- challenges --------------------------------------------------------------------------

    def challenge_sent(self, operator: str, tx_seq: int, block: int) -> int:
        return self._write("INSERT INTO challenges (operator, tx_seq, sent_at_block, status) VALUES (?, ?, ?, 'pending')",
                           operator, tx_seq, block)

    def challenge_opened(self, row: int, challenge_id: int) -> None:
        self._write("UPDATE challenges SET id = ?, status = 'open' WHERE row = ?", challenge_id, row)

    def set_challenge_status(self, row: int, status: str) -> None:
        self._write("UPDATE challenges SET status = ? WHERE row = ?", status, row)

    def challenges(self, statuses: tuple[str, ...] = ("pending", "open")) -> list[StoredChallenge]:
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            rows = self._db.execute("SELECT row, id, operator, tx_seq, sent_at_block, status FROM challenges "
                                    f"WHERE status IN ({marks}) ORDER BY row", statuses).fetchall()
        return [StoredChallenge(*row) for row in rows]

    def challenge_ids(self) -> set[int]:
        with self._lock:
            return {int(r[0]) for r in self._db.execute("SELECT id FROM challenges WHERE id IS NOT NULL")}

    # --- compute slashes ---------------------------------------------------------------------

    def slashed(self, digest: bytes) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM slashes WHERE digest = ?", (digest,)).fetchone() is not None

    def add_slash(self, digest: bytes, provider: str, faults: int) -> None:
        self._write("INSERT OR IGNORE INTO slashes (digest, provider, faults) VALUES (?, ?, ?)", digest, provider, faults)

    def counts(self) -> dict[str, int]:
        with self._lock:
            findings, unpublished = self._db.execute("SELECT COUNT(*), COUNT(*) - SUM(published) FROM findings").fetchone()
            statuses = dict(self._db.execute("SELECT status, COUNT(*) FROM challenges GROUP BY status").fetchall())
            slashes = self._db.execute("SELECT COUNT(*) FROM slashes").fetchone()[0]
        return {"findings": int(findings), "unpublished": int(unpublished or 0), "compute_slashes": int(slashes),
                **{f"challenges_{k}": int(v) for k, v in statuses.items()}}


def _stored_finding(row: Any) -> StoredFinding:
    fid, round_n, subject, kind, check, finding, delta, detail, evidence, root, published = row
    observation = Observation(subject, BondKind(kind), check, Finding(finding), delta, detail,
                              json.loads(evidence)["evidence"])
    return StoredFinding(fid, round_n, observation, None if root is None else bytes(root), bool(published))
