"""The explorer's event index: each contract event a panel lists, read from the chain
incrementally and kept in one SQLite file in the explorer's data dir, so a page of a long list
is an indexed query, not a scan of every log, and a restart resumes where reading stopped
(issue 18).

- A *series* is one event of one contract since a block. Its entries are numbered in chain
  order from 0 (the *position*); a page lists the ``limit`` entries below ``before``, newest
  first (keyset paging on ``(series, position)``). An entry may carry a *key* (a data root, a
  blob id) that pages look it up by (indexed).
- Each series keeps its cursor (the next block to read); reading resumes there, in windows of
  ``LOG_WINDOW_BLOCKS``, one transaction per window.
- Reorgs: each refresh asks the chain's head; when it is not the newest head stored, the index
  compares the newest stored hash with the chain's block of that number and, on a mismatch,
  walks the stored hashes down to the newest that still matches (the fork point is the block
  after it), deletes every entry above it and moves every cursor back to it; then it stores the
  new head and reads on. Only the newest ``KEPT_HEADS`` heads are kept: a deeper reorg clears
  the index, which is then read again from each series' first block.
- Two explorers may share the file (WAL): a window is stored only if its series' cursor is
  still where the read began.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import BlockNotFound
from web3.types import EventData

from zgos.chain.client import Chain
from zgos.runtime.sqlite import write_transaction

LOG_WINDOW_BLOCKS = 5_000  # blocks per eth_getLogs request
KEPT_HEADS = 256  # head hashes kept to find a fork point
BYTES_TAG = "$bytes"  # how a bytes value is stored in an entry's JSON arguments
SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, from_block INTEGER NOT NULL,
    next_block INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries (
    series INTEGER NOT NULL, position INTEGER NOT NULL, block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx TEXT NOT NULL, key BLOB, args TEXT NOT NULL, PRIMARY KEY (series, position)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_key ON entries (series, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_block ON entries (block);
CREATE TABLE IF NOT EXISTS heads (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
"""


def no_key(event: EventData) -> bytes | None:
    return None


@dataclass(frozen=True)
class Series:
    """One event of one contract since ``from_block``, and the key its entries are found by."""

    contract: Contract
    event: str
    from_block: int
    key_of: Callable[[EventData], bytes | None] = no_key

    @property
    def name(self) -> str:
        return f"{self.contract.address}:{self.event}"


@dataclass(frozen=True)
class IndexedEvent:
    """An entry of a series: the log's place on the chain and its decoded arguments."""

    position: int
    block: int
    log_index: int
    tx: str  # 0x-hex
    args: dict[str, Any]

    def as_event_data(self) -> dict[str, Any]:
        """The entry in the shape of web3's ``EventData`` (for the decoders that take one)."""
        return {"args": self.args, "blockNumber": self.block, "logIndex": self.log_index,
                "transactionHash": HexBytes(self.tx)}


@dataclass(frozen=True)
class Page:
    """Entries newest first, and how many the series holds."""

    total: int
    items: list[IndexedEvent]


def encode_value(value: Any) -> Any:
    """A decoded event argument as JSON (bytes tagged, so they come back as bytes)."""
    if isinstance(value, bytes | bytearray):
        return {BYTES_TAG: bytes(value).hex()}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(value, dict):
        if set(value) == {BYTES_TAG}:
            return bytes.fromhex(value[BYTES_TAG])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def _entry(row: tuple[int, int, int, str, str]) -> IndexedEvent:
    position, block, log_index, tx, args = row
    return IndexedEvent(position, block, log_index, tx, decode_value(json.loads(args)))


ENTRY_COLUMNS = "position, block, log_index, tx, args"


class EventIndex:
    """The series the panels asked for, in ``path`` (SQLite, WAL), brought up to the chain head
    before each read. Safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._known: dict[str, tuple[int, Series]] = {}  # series read by this process: name -> (id, series)
        self._generation = 0  # how many reorgs this process undid (cached sums older than one are void)
        self._sums: dict[tuple[int, str], tuple[int, int, list[tuple[int, int]]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._db)

    # --- reads (each brings the index up to the head first) --------------------------------

    def page(self, chain: Chain, series: Series, limit: int, before: int | None) -> Page:
        """The ``limit`` entries below position ``before`` (None: the newest), newest first."""
        with self._lock:
            series_id = self._refresh(chain, series)
            total = int(self._db.execute("SELECT size FROM series WHERE id = ?", (series_id,)).fetchone()[0])
            top = total if before is None else min(before, total)
            rows = self._db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE series = ? AND position < ? "
                                    "ORDER BY position DESC LIMIT ?", (series_id, top, limit)).fetchall()
        return Page(total, [_entry(r) for r in rows])

    def find(self, chain: Chain, series: Series, key: bytes) -> list[IndexedEvent]:
        """Every entry whose key is ``key``, in chain order."""
        with self._lock:
            series_id = self._refresh(chain, series)
            rows = self._db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE series = ? AND key = ? "
                                    "ORDER BY position", (series_id, key)).fetchall()
        return [_entry(r) for r in rows]

    def present(self, chain: Chain, series: Series, keys: list[bytes]) -> set[bytes]:
        """Which of ``keys`` some entry has."""
        if not keys:
            return set()
        with self._lock:
            series_id = self._refresh(chain, series)
            marks = ", ".join("?" * len(keys))
            rows = self._db.execute(f"SELECT DISTINCT key FROM entries WHERE series = ? AND key IN ({marks})",
                                    (series_id, *keys)).fetchall()
        return {bytes(r[0]) for r in rows}

    def block_sums(self, chain: Chain, series: Series, arg: str) -> list[tuple[int, int]]:
        """``(block, sum of the integer argument arg over the block's entries)``, in block
        order: kept in memory and extended with the entries added since the last call (a
        reorg this index undid starts it again), so a chart of a long series costs only its
        new entries."""
        with self._lock:
            series_id = self._refresh(chain, series)
            generation, seen, sums = self._sums.get((series_id, arg), (self._generation, 0, []))
            if generation != self._generation:
                seen, sums = 0, []
            rows = self._db.execute("SELECT block, args FROM entries WHERE series = ? AND position >= ? "
                                    "ORDER BY position", (series_id, seen)).fetchall()
            for block, args in rows:
                amount = int(json.loads(args)[arg])
                if sums and sums[-1][0] == block:
                    sums[-1] = (block, sums[-1][1] + amount)
                else:
                    sums.append((int(block), amount))
            self._sums[(series_id, arg)] = (self._generation, seen + len(rows), sums)
            return list(sums)

    def cursor(self, series: Series) -> int | None:
        """The next block ``series`` reads from, as stored (None: never read)."""
        with self._lock:
            row = self._db.execute("SELECT next_block FROM series WHERE name = ?", (series.name,)).fetchone()
        return None if row is None else int(row[0])

    # --- keeping up with the chain ---------------------------------------------------------

    def _refresh(self, chain: Chain, series: Series) -> int:
        """Register ``series``, undo a reorg, and read every known series up to the head."""
        series_id = self._register(series)
        head = chain.w3.eth.get_block("latest")
        number, head_hash = int(head["number"]), bytes(head["hash"])
        newest = self._db.execute("SELECT number, hash FROM heads ORDER BY number DESC LIMIT 1").fetchone()
        if newest is None or (int(newest[0]), bytes(newest[1])) != (number, head_hash):  # the chain moved
            self._undo_reorg(chain)
            with self._transaction() as db:
                db.execute("INSERT OR REPLACE INTO heads VALUES (?, ?)", (number, head_hash))
                db.execute("DELETE FROM heads WHERE number < (SELECT MIN(number) FROM "
                           "(SELECT number FROM heads ORDER BY number DESC LIMIT ?))", (KEPT_HEADS,))
        for known_id, known in self._known.values():
            self._catch_up(chain, known_id, known, number)
        return series_id

    def _register(self, series: Series) -> int:
        """The series' id (created, or reset if it was stored from another block)."""
        if series.name in self._known and self._known[series.name][1].from_block == series.from_block:
            return self._known[series.name][0]
        with self._transaction() as db:
            row = db.execute("SELECT id, from_block FROM series WHERE name = ?", (series.name,)).fetchone()
            if row is not None and int(row[1]) != series.from_block:
                db.execute("DELETE FROM entries WHERE series = ?", (row[0],))
                db.execute("UPDATE series SET from_block = ?, next_block = ?, size = 0 WHERE id = ?",
                           (series.from_block, series.from_block, row[0]))
            elif row is None:
                row = db.execute("INSERT INTO series (name, from_block, next_block) VALUES (?, ?, ?) RETURNING id",
                                 (series.name, series.from_block, series.from_block)).fetchone()
        self._known[series.name] = (int(row[0]), series)
        return int(row[0])

    def _undo_reorg(self, chain: Chain) -> None:
        """If the newest stored head is no longer on the chain, drop everything above the
        newest stored head that is (the fork point), or everything if none is."""
        heads = [(int(n), bytes(h)) for n, h in
                 self._db.execute("SELECT number, hash FROM heads ORDER BY number DESC").fetchall()]
        if not heads:
            return
        kept = next((n for n, h in heads if self._on_chain(chain, n, h)), -1)
        if kept == heads[0][0]:
            return
        self._generation += 1
        with self._transaction() as db:
            db.execute("DELETE FROM entries WHERE block > ?", (kept,))
            db.execute("DELETE FROM heads WHERE number > ?", (kept,))
            db.execute("UPDATE series SET next_block = MIN(next_block, MAX(from_block, ?)), size = "
                       "(SELECT COUNT(*) FROM entries WHERE entries.series = series.id)", (kept + 1,))

    @staticmethod
    def _on_chain(chain: Chain, number: int, block_hash: bytes) -> bool:
        try:
            return bytes(chain.w3.eth.get_block(number)["hash"]) == block_hash
        except BlockNotFound:
            return False

    def _catch_up(self, chain: Chain, series_id: int, series: Series, head: int) -> None:
        """Read ``series`` from its cursor to ``head``, a window per transaction. A window
        another explorer on the same file stored meanwhile is not stored twice."""
        cursor = "SELECT next_block, size FROM series WHERE id = ?"
        while (stored := self._db.execute(cursor, (series_id,)).fetchone())[0] <= head:
            next_block, size = int(stored[0]), int(stored[1])
            to_block = min(head, next_block + LOG_WINDOW_BLOCKS - 1)
            logs = chain.get_logs(series.contract, series.event, next_block, to_block)
            rows = [(series_id, size + i, int(e["blockNumber"]), int(e["logIndex"]), e["transactionHash"].to_0x_hex(),
                     series.key_of(e), json.dumps(encode_value(e["args"]))) for i, e in enumerate(logs)]
            with self._transaction() as db:
                if tuple(db.execute(cursor, (series_id,)).fetchone()) != (next_block, size):
                    continue  # read by another process: read on from its cursor
                db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("UPDATE series SET next_block = ?, size = ? WHERE id = ?",
                           (to_block + 1, size + len(rows), series_id))
