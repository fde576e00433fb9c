"""The PoRA workers: ``threads`` threads hashing the current puzzle over the sealed loads,
each busy at most ``cpu_fraction`` of the time (they sleep the rest). A hit ends the epoch's
puzzle (one answer per epoch) and is handed to the control loop."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from zgos.storage.miner.store import MinerStore
from zgos.storage.spec.pora import (
    SECTORS_PER_LOAD,
    Hit,
    RecallRange,
    compute_pad_seed,
    compute_pora_hash,
    compute_scratchpad,
)
from zgos.storage.spec.sealing import SECTORS_PER_SEAL

HASHRATE_WINDOW_S = 30.0
IDLE_WAIT_S = 0.2
MIN_CPU_FRACTION = 0.001


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
class FoundHit:
    """A winning iteration: its puzzle, the hit and the sealing context digest of its piece."""

    puzzle: Puzzle
    hit: Hit
    sealed_context: bytes


@dataclass
class WorkerStats:
    iterations: int = 0
    hits: int = 0
    started: float = field(default_factory=time.time)
    recent: deque[float] = field(default_factory=deque)  # end times of recent iterations


class PoraWorkers:
    """The worker threads and what they share with the control loop (under one lock)."""

    def __init__(self, store: MinerStore, miner_id: bytes, cpu_fraction: float, on_hit: Callable[[], None]) -> None:
        self.store = store
        self.miner_id = miner_id
        self.fraction = min(max(cpu_fraction, MIN_CPU_FRACTION), 1.0)
        self.on_hit = on_hit
        self.stats = WorkerStats()
        self.mining = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._puzzle: Puzzle | None = None
        self._hits: list[FoundHit] = []

    @property
    def puzzle(self) -> Puzzle | None:
        with self._lock:
            return self._puzzle

    def set_puzzle(self, puzzle: Puzzle | None) -> None:
        """The puzzle to hash (None: nothing); dropped while mining is paused."""
        with self._lock:
            self._puzzle = puzzle if self.mining.is_set() else None

    def add_hit(self, found: FoundHit) -> None:
        with self._lock:
            self._hits.append(found)

    def take_hits(self) -> list[FoundHit]:
        with self._lock:
            hits, self._hits = self._hits, []
        return hits

    def run(self) -> None:
        """One worker thread's loop, until ``stopping``."""
        while not self.stopping.is_set():
            puzzle = self.puzzle
            if puzzle is None or not self.mining.is_set():
                self.stopping.wait(IDLE_WAIT_S)
                continue
            began = time.perf_counter()
            found = self.iterate(puzzle, os.urandom(32))
            busy = time.perf_counter() - began
            self._record(puzzle, found)
            if self.fraction < 1.0:
                self.stopping.wait(busy * (1 - self.fraction) / self.fraction)

    def _record(self, puzzle: Puzzle, found: FoundHit | None) -> None:
        now = time.time()
        with self._lock:
            self.stats.iterations += 1
            self.stats.recent.append(now)
            while len(self.stats.recent) > 1 and self.stats.recent[0] < now - HASHRATE_WINDOW_S:
                self.stats.recent.popleft()
            if found is None or self._puzzle is not puzzle:
                return
            self.stats.hits += 1
            self._hits.append(found)
            self._puzzle = None  # one answer per epoch: stop hashing until the next
        self.on_hit()

    def iterate(self, puzzle: Puzzle, nonce: bytes) -> FoundHit | None:
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
                return FoundHit(puzzle, Hit(nonce, position, offset, sealed, pora_hash), context)
        return None

    def hash_rate(self) -> float:
        """PoRA iterations per second over the last ``HASHRATE_WINDOW_S``."""
        now = time.time()
        with self._lock:
            recent = [t for t in self.stats.recent if t >= now - HASHRATE_WINDOW_S]
        window = min(HASHRATE_WINDOW_S, now - self.stats.started)
        return 0.0 if window <= 0 else len(recent) / window
