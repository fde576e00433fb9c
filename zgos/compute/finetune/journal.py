"""The provider's durable task journal (SQLite, WAL, ``synchronous=FULL``).

Every task's state, attempt count, deliverable key, sealed key and result root are written here before
the action that depends on them, so a provider killed at any instant (``kill -9``) restarts
from the journal and repeats only idempotent work (see :mod:`zgos.compute.finetune.worker`).
State changes go through :func:`zgos.compute.spec.tasks.process_task_event`, so the
journal can never hold a transition the state machine forbids. The file holds deliverable
keys, so it is created readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from zgos.compute.spec.tasks import TaskEvent, TaskState, process_task_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    user_public_key BLOB,
    aes_key BLOB,
    aes_iv BLOB,
    sealed_key BLOB,
    result_root BLOB,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    loss REAL,
    tokens INTEGER,
    error TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS losses (
    task_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss REAL NOT NULL,
    PRIMARY KEY (task_id, step)
);
"""
MAX_LOSS_POINTS = 500  # a task's loss curve as served: at most this many (step, loss) points


@dataclass(frozen=True)
class TaskRecord:
    task_id: int
    state: TaskState
    attempts: int
    user_public_key: bytes | None
    aes_key: bytes | None
    aes_iv: bytes | None
    sealed_key: bytes | None  # the key sealed to the user, committed to at delivery
    result_root: bytes | None
    step: int
    total_steps: int
    loss: float | None
    tokens: int | None
    error: str | None


class Journal:
    """One provider's task journal at ``path``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
        if "sealed_key" not in columns:  # a journal written before key commitments
            self._db.execute("ALTER TABLE tasks ADD COLUMN sealed_key BLOB")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add_task(self, task_id: int) -> bool:
        """Record a newly seen task in state Init; False if it was already known."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO tasks (task_id, state, updated_at) VALUES (?, ?, ?)",
            (task_id, TaskState.INIT.value, time.time()),
        )
        return cursor.rowcount == 1

    def get(self, task_id: int) -> TaskRecord:
        row = self._db.execute(
            "SELECT task_id, state, attempts, user_public_key, aes_key, aes_iv, sealed_key, result_root,"
            " step, total_steps, loss, tokens, error FROM tasks WHERE task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            raise KeyError(task_id)
        return TaskRecord(row[0], TaskState(row[1]), *row[2:])

    def task_ids(self, states: set[TaskState] | None = None) -> list[int]:
        rows = self._db.execute("SELECT task_id, state FROM tasks ORDER BY task_id").fetchall()
        return [r[0] for r in rows if states is None or TaskState(r[1]) in states]

    def apply(self, task_id: int, event: TaskEvent, error: str | None = None) -> TaskState:
        """Apply ``event`` durably; entering a new state counts as one attempt of it."""
        new = process_task_event(self.get(task_id).state, event)
        self._db.execute(
            "UPDATE tasks SET state = ?, attempts = 0, error = COALESCE(?, error),"
            " updated_at = ? WHERE task_id = ?",
            (new.value, error, time.time(), task_id),
        )
        return new

    def count_attempt(self, task_id: int) -> int:
        self._db.execute(
            "UPDATE tasks SET attempts = attempts + 1, updated_at = ? WHERE task_id = ?",
            (time.time(), task_id),
        )
        return self.get(task_id).attempts

    def set_fields(self, task_id: int, **fields: object) -> None:
        allowed = {
            "user_public_key",
            "aes_key",
            "aes_iv",
            "sealed_key",
            "result_root",
            "step",
            "total_steps",
            "loss",
            "tokens",
            "error",
        }
        if not fields or set(fields) - allowed:
            raise ValueError(f"unknown journal fields {sorted(set(fields) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE tasks SET {assignments}, updated_at = ? WHERE task_id = ?",
            (*fields.values(), time.time(), task_id),
        )
        if isinstance(fields.get("step"), int) and isinstance(fields.get("loss"), float):
            self._db.execute("INSERT OR REPLACE INTO losses (task_id, step, loss) VALUES (?, ?, ?)",
                             (task_id, fields["step"], fields["loss"]))

    def losses(self, task_id: int, max_points: int = MAX_LOSS_POINTS) -> list[tuple[int, float]]:
        """The task's loss curve: every recorded ``(step, loss)``, evenly thinned to at most
        ``max_points`` (the last point always kept)."""
        rows = self._db.execute("SELECT step, loss FROM losses WHERE task_id = ? ORDER BY step", (task_id,)).fetchall()
        stride = -(-len(rows) // max_points) if rows else 1
        thinned = rows[::stride]
        if rows and thinned[-1] != rows[-1]:
            thinned = [*thinned[: max_points - 1], rows[-1]]
        return [(int(step), float(loss)) for step, loss in thinned]

    def get_meta(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
