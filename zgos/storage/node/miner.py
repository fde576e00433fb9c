"""The storage node's miner: seals the data it holds, runs PoRA, submits answers, earns fees.

Parts (one job each, wired by ``Miner``):
* ``MinerStore`` (``miner.sqlite`` beside the node's store): the sealed replica of the flow this
  node holds, one 4 KiB sealed piece per row keyed by seal index, and the answers submitted per
  epoch. As in 0G's split of ``flow_db``/``data_db``, miner-specific data lives apart from the
  shareable store; the node's reads keep using its unsealed store, so they never change.
* ``FlowReader``: flow sectors from the node's store (file data, zeros for padding and gaps).
* the control thread: registers the miner (retrying with a logged reason; never fatal), polls
  ``PoraMine.computeWorkerContext`` (eth_call), opens due epochs, seals new data in the
  background, hands the puzzle to the workers and submits their hits.
* ``threads`` PoRA workers, each busy at most ``cpu_fraction`` of the time (they sleep the rest).

Restart behaviour: sealed pieces and submitted answers are durable. An answer is recorded as
``sending`` before its transaction; after a restart an epoch with a recorded answer is never
answered again (the contract also refuses a second reward), so a restart mid-epoch resumes
mining without double-submitting. Keys are never logged, only the miner's address.
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3RPCError

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.storage.contracts import LogEntry
from zgos.storage.node.node import DataUnavailable, StorageNode
from zgos.storage.node.sqlitedb import SqliteDb
from zgos.storage.spec.answer import (
    EMPTY_HASH,
    EpochRange,
    NoSealingContext,
    compute_answer,
    compute_epoch_ranges,
    compute_proof_root,
    compute_seal_proof,
    get_sealing_context,
    is_zero_seal,
)
from zgos.storage.spec.flow import FlowItem, compute_flow_items
from zgos.storage.spec.merkle import (
    BYTES_PER_SECTOR,
    SECTORS_PER_SEGMENT,
    ZERO_SECTOR_HASH,
    compute_leaf_hashes,
    compute_segment_root_from_leaves,
)
from zgos.storage.spec.pora import (
    SEALS_PER_LOAD,
    SECTORS_PER_LOAD,
    Hit,
    InvalidRecallRange,
    RecallRange,
    compute_owner_miner_id,
    compute_pad_seed,
    compute_pora_hash,
    compute_recall_range,
    compute_scratchpad,
    compute_threshold,
)
from zgos.storage.spec.sealing import BYTES_PER_SEAL, SECTORS_PER_SEAL, seal, unseal

log = logging.getLogger(__name__)

REGISTER_RETRY_MIN_S = 2.0
REGISTER_RETRY_MAX_S = 30.0
SEALS_PER_TICK = 4096  # sealing work per control tick (16 MiB)
HASHRATE_WINDOW_S = 30.0
LOAD_CACHE = 64  # sealed loads kept in memory per worker pool

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

    def put_seals(self, rows: list[tuple[int, bytes, bytes | None]]) -> None:
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

    def answer(self, epoch: int) -> dict[str, Any] | None:
        row = self._db().execute(
            "SELECT epoch, context, recall, state, detail, reward, at FROM answers WHERE epoch = ?", (epoch,)
        ).fetchone()
        return None if row is None else _answer_json(row)

    def record_answer(self, epoch: int, context: bytes, recall: int, state: str, detail: str = "", reward: int = 0) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO answers(epoch, context, recall, state, detail, reward, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (epoch, context, recall, state, detail, str(reward), time.time()),
            )

    def forget_answer(self, epoch: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM answers WHERE epoch = ?", (epoch,))

    def answers(self) -> list[dict[str, Any]]:
        rows = self._db().execute(
            "SELECT epoch, context, recall, state, detail, reward, at FROM answers ORDER BY epoch"
        ).fetchall()
        return [_answer_json(row) for row in rows]

    def delete_seal(self, index: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM seals WHERE idx = ?", (index,))


def _answer_json(row: tuple[Any, ...]) -> dict[str, Any]:
    epoch, context, recall, state, detail, reward, at = row
    return {"epoch": int(epoch), "context": "0x" + bytes(context).hex(), "recallPosition": int(recall),
            "state": state, "detail": detail, "reward": int(reward), "at": float(at)}


class FlowReader:
    """Flow sectors as this node holds them: file data from its store, zeros for padding and
    gaps; ``None`` where a file's data is not stored here."""

    def __init__(self, node: StorageNode) -> None:
        self.node = node
        self._entries: list[LogEntry] = []
        self._starts: list[int] = []

    def refresh(self) -> list[LogEntry]:
        if len(self._entries) != self.node.store.next_seq():
            self._entries = self.node.store.entries()
            self._starts = [e.start_entry for e in self._entries]
        return self._entries

    def flow_length(self) -> int:
        entries = self.refresh()
        return 1 if not entries else entries[-1].start_entry + entries[-1].sectors

    def prefix(self, flow_length: int) -> list[LogEntry] | None:
        """The entries making up the first ``flow_length`` sectors (None: not synced that far)."""
        entries = self.refresh()
        out = [e for e in entries if e.start_entry + e.sectors <= flow_length]
        end = out[-1].start_entry + out[-1].sectors if out else 1
        return out if end == flow_length else None

    def sectors(self, start: int, count: int) -> bytes | None:
        """Flow sectors ``[start, start+count)``; sector 0 (the placeholder) reads as zeros."""
        self.refresh()
        out = bytearray(count * BYTES_PER_SECTOR)
        position, end = start, start + count
        index = bisect.bisect_right(self._starts, position) - 1
        index = max(index, 0)
        while position < end and index < len(self._entries):
            entry = self._entries[index]
            lo, hi = max(position, entry.start_entry), min(end, entry.start_entry + entry.sectors)
            if entry.start_entry >= end:
                break
            data_sectors = -(-entry.size // BYTES_PER_SECTOR)
            real_hi = min(hi, entry.start_entry + data_sectors)
            if lo < real_hi:
                record = self.node.store.tx(entry.seq)
                if record is None:
                    return None
                try:
                    chunk = self.node.chunks(record, lo - entry.start_entry, real_hi - entry.start_entry)
                except (DataUnavailable, ZgError):
                    return None
                offset = (lo - start) * BYTES_PER_SECTOR
                out[offset : offset + len(chunk)] = chunk
            position = max(position, hi)
            index += 1
        return bytes(out)

    def inner_root(self, item: FlowItem, position: int, height: int) -> bytes:
        """Root of ``2^height`` sectors inside a submission node, hashed from the data."""
        count = 1 << height
        leaves: list[bytes] = []
        for first in range(position, position + count, SECTORS_PER_SEGMENT):
            n = min(SECTORS_PER_SEGMENT, position + count - first)
            data = self.sectors(first, n)
            if data is None:
                raise DataUnavailable(f"flow sectors {first}..{first + n} are not stored here")
            leaves += compute_leaf_hashes(data)
        leaves += [ZERO_SECTOR_HASH] * (count - len(leaves))
        return compute_segment_root_from_leaves(leaves)


@dataclass(frozen=True)
class Puzzle:
    """One epoch's work: everything a PoRA worker needs, immutable."""

    epoch: int
    context_digest: bytes
    flow_root: bytes
    flow_length: int
    subtask_digest: bytes
    recall_range: RecallRange
    threshold: int


@dataclass(frozen=True)
class MinerConfig:
    mine_address: str
    threads: int = 1
    cpu_fraction: float = 0.25
    poll_s: float = 2.0
    beneficiary: str | None = None  # default: the miner's own address


@dataclass
class MinerStats:
    iterations: int = 0
    started: float = field(default_factory=time.time)
    recent: deque[float] = field(default_factory=deque)  # end times of recent iterations
    hits: int = 0
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    last_reward: dict[str, Any] | None = None
    last_error: str = ""


class Miner:
    """PoRA miner of one storage node (see the module docstring)."""

    def __init__(self, node: StorageNode, chain: Chain, account: LocalAccount, config: MinerConfig) -> None:
        self.node = node
        self.chain = chain
        self.account = account
        self.config = config
        self.mine = chain.contract("PoraMine", config.mine_address)
        self.flow = chain.contract("Flow", node.config.flow_address)
        self.miner_id = compute_owner_miner_id(bytes.fromhex(account.address[2:]))
        self.beneficiary = config.beneficiary or account.address
        self.store = MinerStore(node.config.data_dir / "miner.sqlite")
        self.store.check_miner(self.miner_id)
        self.reader = FlowReader(node)
        self.stats = MinerStats()
        self.registered = False
        self._ranges: list[EpochRange] = []
        self._epoch_log: list[tuple[bytes, int]] = []
        self._epoch_block = 0
        self._puzzle: Puzzle | None = None
        self._hits: list[tuple[Puzzle, Hit, bytes]] = []
        self._lock = threading.Lock()
        self._mining = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume) mining; the control thread and workers run until ``stop``."""
        self._mining.set()
        if not self._threads:
            self._threads = [threading.Thread(target=self._control, name="miner-control", daemon=True)]
            self._threads += [
                threading.Thread(target=self._worker, name=f"miner-pora-{i}", daemon=True)
                for i in range(self.config.threads)
            ]
            for thread in self._threads:
                thread.start()
        log.info("miner %s started (id 0x%s, beneficiary %s, %d thread(s) at %.0f%% CPU)",
                 self.account.address, self.miner_id.hex(), self.beneficiary,
                 self.config.threads, 100 * self.config.cpu_fraction)

    def pause(self) -> None:
        """Stop hashing and submitting (sealing stays as it is); ``start`` resumes."""
        self._mining.clear()
        log.info("miner paused")

    def close(self) -> None:
        self._stop.set()
        self._mining.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._mining.is_set() and not self._stop.is_set()

    # --- control loop --------------------------------------------------------------------

    def _control(self) -> None:
        retry = REGISTER_RETRY_MIN_S
        while not self._stop.is_set():
            try:
                if not self.registered:
                    self._register()
                    retry = REGISTER_RETRY_MIN_S
                self._tick()
                self.stats.last_error = ""
            except ZgError as exc:
                self.stats.last_error = str(exc)
                log.warning("miner: %s; retrying in %.0f s", exc, retry if not self.registered else self.config.poll_s)
                if not self.registered:
                    self._wake.wait(retry)
                    self._wake.clear()
                    retry = min(retry * 2, REGISTER_RETRY_MAX_S)
                    continue
            except (OSError, requests.RequestException, Web3RPCError) as exc:
                self.stats.last_error = f"chain unreachable: {type(exc).__name__}"
                log.warning("miner: chain unreachable (%s); retrying", type(exc).__name__)
            except Exception as exc:  # a bug must not kill the node: log it and keep going
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("miner control loop error")
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    def _register(self) -> None:
        current = self.chain.call(self.mine.functions.beneficiaries(self.miner_id))
        if str(current).lower() != self.beneficiary.lower():
            self.chain.transact(self.account, self.mine.functions.register(self.beneficiary))
            log.info("registered miner 0x%s with beneficiary %s", self.miner_id.hex(), self.beneficiary)
        self.registered = True

    def _tick(self) -> None:
        worker = self.chain.call(self.mine.functions.computeWorkerContext(self.miner_id))
        context, subtask_digest, pora_target, _max_shards, can_submit = worker
        epoch, _mine_start, flow_root, flow_length, _block_digest, digest = context
        self._resolve_unknown(int(epoch))
        self._update_epochs(bytes(digest), int(flow_length))
        self._seal(int(flow_length))
        self._submit_hits()
        puzzle = None
        if can_submit and bytes(digest) != EMPTY_HASH and self.store.answer(int(epoch)) is None:
            puzzle = self._make_puzzle(int(epoch), bytes(digest), bytes(flow_root), int(flow_length),
                                       bytes(subtask_digest), int(pora_target))
        with self._lock:
            self._puzzle = puzzle if self._mining.is_set() else None

    def _make_puzzle(self, epoch: int, digest: bytes, flow_root: bytes, flow_length: int,
                     subtask_digest: bytes, pora_target: int) -> Puzzle | None:
        # A sharded node (``node.shard``, when the node has shards) mines only its segments:
        # recall loads are flow segments, kept in the shard by the range's mask.
        shard = getattr(self.node, "shard", None)
        shard_id, num_shards = (int(shard.shard_id), int(shard.num_shard)) if shard is not None else (0, 1)
        try:
            recall_range = compute_recall_range(flow_length, shard_id, num_shards)
            if recall_range.mine_length < SECTORS_PER_LOAD * num_shards:
                return None  # not one 256 KiB load of the flow per shard: nothing to mine yet
            threshold = compute_threshold(pora_target, recall_range, flow_length)
        except InvalidRecallRange:
            return None
        return Puzzle(epoch, digest, flow_root, flow_length, subtask_digest, recall_range, threshold)

    def _update_epochs(self, digest: bytes, flow_length: int) -> None:
        """Follow ``NewEpoch``; open the current epoch on chain when it holds data to seal."""
        head = self.chain.block_number()
        if head >= self._epoch_block:
            first = max(self._epoch_block, self.node.config.start_block)
            for event in self.chain.get_logs(self.flow, "NewEpoch", first, head):
                self._epoch_log.append((bytes(event["args"]["context"]), int(event["args"]["flowLength"])))
            self._epoch_block = head + 1
            self._ranges = compute_epoch_ranges(self._epoch_log)
        recorded_end = self._ranges[-1].end if self._ranges else 0
        recorded = {r.digest for r in self._ranges}
        if digest != EMPTY_HASH and digest not in recorded and flow_length > recorded_end:
            # New data is only sealable once its epoch is recorded: record it (cheap, once).
            self.chain.transact(self.account, self.flow.functions.makeContext())
            log.info("opened the mining epoch holding flow sectors %d..%d", recorded_end, flow_length)

    def _seal(self, flow_length: int) -> None:
        """Seal pieces this node holds inside the recorded epochs, a bounded amount per tick."""
        if not self._ranges:
            return
        limit = min(self._ranges[-1].end, flow_length) // SECTORS_PER_SEAL
        done = self.store.sealed_indexes(1, limit)
        budget = SEALS_PER_TICK
        rows: list[tuple[int, bytes, bytes | None]] = []
        for load in range(0, -(-limit // SEALS_PER_LOAD)):
            first, last = max(1, load * SEALS_PER_LOAD), min(limit, (load + 1) * SEALS_PER_LOAD)
            todo = [s for s in range(first, last) if s not in done]
            if not todo:
                continue
            data = self.reader.sectors(load * SECTORS_PER_LOAD, SECTORS_PER_LOAD)
            if data is None:
                continue  # some of it is not stored here (yet): try again later
            for s in todo:
                offset = (s - load * SEALS_PER_LOAD) * BYTES_PER_SEAL
                piece = data[offset : offset + BYTES_PER_SEAL]
                try:
                    context = get_sealing_context(self._ranges, s)
                except NoSealingContext:
                    continue
                sealed = None if is_zero_seal(piece) else seal(piece, self.miner_id, context.digest, s * SECTORS_PER_SEAL)
                rows.append((s, context.digest, sealed))
                budget -= 1
            if budget <= 0:
                break
        if rows:
            self.store.put_seals(rows)
            log.info("sealed %d piece(s) of 4 KiB", len([r for r in rows if r[2] is not None]))

    # --- submitting ----------------------------------------------------------------------

    def _resolve_unknown(self, epoch: int) -> None:
        """After a restart, an answer left ``sending`` is settled from the chain's record."""
        for answer in self.store.answers():
            if answer["state"] != "sending":
                continue
            rewarded = int(self.chain.call(self.mine.functions.lastRewardedEpoch(self.miner_id)))
            state = "accepted" if rewarded == answer["epoch"] else "unknown"
            self.store.record_answer(answer["epoch"], bytes.fromhex(answer["context"][2:]), answer["recallPosition"],
                                     state, "settled after a restart")

    def _submit_hits(self) -> None:
        with self._lock:
            hits, self._hits = self._hits, []
        for puzzle, hit, sealed_context in hits:
            if self.store.answer(puzzle.epoch) is not None:
                continue  # already answered this epoch (also across restarts)
            self._submit(puzzle, hit, sealed_context)

    def _submit(self, puzzle: Puzzle, hit: Hit, sealed_context: bytes) -> None:
        seal_index = hit.recall_position // SECTORS_PER_SEAL
        prefix = self.reader.prefix(puzzle.flow_length)
        if prefix is None:
            log.info("miner: log sync is behind the mining context; keeping the hit for later")
            with self._lock:
                self._hits.append((puzzle, hit, sealed_context))
            return
        items = compute_flow_items([(e.seq, e.submission) for e in prefix])
        data = unseal(hit.sealed_data, self.miner_id, sealed_context, hit.recall_position)
        try:
            proof = compute_seal_proof(items, seal_index, puzzle.flow_length, self.reader.inner_root)
        except DataUnavailable as exc:
            log.warning("miner: cannot prove seal %d: %s", seal_index, exc)
            return
        if compute_proof_root(data, seal_index, proof) != puzzle.flow_root:
            self.stats.rejected += 1
            log.warning("miner: seal %d does not prove against the context root; resealing it", seal_index)
            self.store.delete_seal(seal_index)
            return
        answer = compute_answer(hit, puzzle.context_digest, self.miner_id, puzzle.recall_range, sealed_context, proof)
        self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "sending")
        self.stats.submitted += 1
        try:
            receipt = self.chain.transact(self.account, self.mine.functions.submit(answer.to_abi()))
        except ZgError as exc:  # a rejected answer (or a chain error) never stops the miner
            self.stats.rejected += 1
            self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "rejected", str(exc))
            log.warning("miner: answer for epoch %d rejected: %s", puzzle.epoch, exc)
            return
        events = receipt.events(self.mine, "NewSubmission")
        reward = int(events[0]["args"]["reward"]) if events else 0
        self.stats.accepted += 1
        self.stats.last_reward = {"epoch": puzzle.epoch, "amount": reward, "tx": receipt.tx_hash,
                                  "recallPosition": hit.recall_position, "gasUsed": receipt.gas_used}
        self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "accepted",
                                 receipt.tx_hash, reward)
        log.info("miner: answer for epoch %d accepted (recall %d, reward %d wei, gas %d)",
                 puzzle.epoch, hit.recall_position, reward, receipt.gas_used)

    # --- PoRA workers --------------------------------------------------------------------

    def _worker(self) -> None:
        fraction = min(max(self.config.cpu_fraction, 0.001), 1.0)
        while not self._stop.is_set():
            with self._lock:
                puzzle = self._puzzle
            if puzzle is None or not self._mining.is_set():
                self._stop.wait(0.2)
                continue
            began = time.perf_counter()
            hit = self._iterate(puzzle, os.urandom(32))
            busy = time.perf_counter() - began
            with self._lock:
                self.stats.iterations += 1
                self.stats.recent.append(time.time())
                while len(self.stats.recent) > 1 and self.stats.recent[0] < time.time() - HASHRATE_WINDOW_S:
                    self.stats.recent.popleft()
                if hit is not None and self._puzzle is puzzle:
                    self.stats.hits += 1
                    self._hits.append(hit)
                    self._puzzle = None  # one answer per epoch: stop hashing until the next
                    self._wake.set()
            if fraction < 1.0:
                self._stop.wait(busy * (1 - fraction) / fraction)

    def _iterate(self, puzzle: Puzzle, nonce: bytes) -> tuple[Puzzle, Hit, bytes] | None:
        """One PoRA iteration over the sealed load the nonce recalls (§3.3)."""
        pad_seed = compute_pad_seed(self.miner_id, nonce, puzzle.subtask_digest, puzzle.recall_range)
        scratchpad, recall_seed = compute_scratchpad(pad_seed)
        load_position = puzzle.recall_range.recall_position(recall_seed)
        for offset, piece in enumerate(self.store.load(load_position // SECTORS_PER_LOAD)):
            if piece is None:
                continue
            context, sealed = piece
            pora_hash = compute_pora_hash(offset, pad_seed, scratchpad, sealed)
            if int.from_bytes(pora_hash, "big") <= puzzle.threshold:
                position = load_position + offset * SECTORS_PER_SEAL
                return puzzle, Hit(nonce, position, offset, sealed, pora_hash), context
        return None

    # --- status --------------------------------------------------------------------------

    def hash_rate(self) -> float:
        """PoRA iterations per second over the last ``HASHRATE_WINDOW_S``."""
        now = time.time()
        with self._lock:
            recent = [t for t in self.stats.recent if t >= now - HASHRATE_WINDOW_S]
        window = min(HASHRATE_WINDOW_S, now - self.stats.started)
        return 0.0 if window <= 0 else len(recent) / window

    def status(self) -> dict[str, Any]:
        sealed, zero = self.store.count_seals()
        answers = self.store.answers()
        with self._lock:
            puzzle = self._puzzle
        return {
            "running": self.running,
            "minerAddress": self.account.address,
            "minerId": "0x" + self.miner_id.hex(),
            "beneficiary": self.beneficiary,
            "registered": self.registered,
            "threads": self.config.threads,
            "cpuFraction": self.config.cpu_fraction,
            "hashRate": round(self.hash_rate(), 2),
            "iterations": self.stats.iterations,
            "sealedPieces": sealed,
            "zeroPieces": zero,
            "miningEpoch": puzzle.epoch if puzzle else None,
            "answersSubmitted": len(answers),
            "answersAccepted": len([a for a in answers if a["state"] == "accepted"]),
            "answersRejected": len([a for a in answers if a["state"] == "rejected"]),
            "totalReward": sum(a["reward"] for a in answers if a["state"] == "accepted"),
            "lastReward": next((a for a in reversed(answers) if a["state"] == "accepted"), None),
            "lastError": self.stats.last_error,
        }


def install_miner_rpc(methods: dict[str, Callable[[list[Any]], Any]], miner: Miner) -> None:
    """Add ``miner_start``/``miner_stop``/``miner_getStatus`` (localhost only, like ``admin_*``)
    and the miner's status to ``zgs_getStatus``."""
    node_status = methods["zgs_getStatus"]

    def start(params: list[Any]) -> bool:
        miner.start()
        return True

    def stop(params: list[Any]) -> bool:
        miner.pause()
        return True

    methods["miner_start"] = start
    methods["miner_stop"] = stop
    methods["miner_getStatus"] = lambda params: miner.status()
    methods["zgs_getStatus"] = lambda params: {**node_status(params), "miner": miner.status()}

