"""The replayer: follow the Flow's ``Submit`` events and replay this node's KV transactions,
strictly in log order, into the store.

Behaviour (storage.md §6; what 0G's KV node gets wrong, issue 15):
* Events are read in pages of at most ``LOG_PAGE_BLOCKS`` up to ``head - confirmations``. Every
  log entry gets a row in the store, and the cursor moves with it in the same SQLite
  transaction (a batch of up to ``batch_entries`` shares one), so a restart (even after
  ``kill -9``) resumes at exactly the next entry not yet stored.
* A transaction's data comes from the storage nodes through the verified download pipeline
  (every segment checked against the file's data root, the size taken from the chain).
* A transaction never locks its streams. Data that no node serves within
  ``data_deadline_s`` gets ``DataUnavailable``; data over ``max_tx_bytes`` or that does not
  parse gets ``DataParseError``; a refused one gets its reason. The next transaction replays
  as if it had not happened (0G's node waits forever on missing data: 0g-storage-kv#41).
* A sender that may write none of the streams is refused before any byte is fetched.
* Reorganisations: the hash of the block before the cursor is kept; when the chain no longer
  has that block, the last ``REORG_REWIND_BLOCKS`` blocks of results are forgotten and replayed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from zgos.kv.node.memo import MemoView
from zgos.kv.node.store import NO_ENTRY_YET, KvStore
from zgos.kv.spec.replay import (
    DATA_PARSE_ERROR,
    DATA_UNAVAILABLE,
    Commit,
    KvTransaction,
    check_sender,
    is_for_node,
    process_transaction,
)
from zgos.kv.spec.stream import parse_stream_tags
from zgos.storage.client import StorageError
from zgos.storage.contracts import FlowContract, LogEntry

log = logging.getLogger(__name__)

LOG_PAGE_BLOCKS = 999
REORG_REWIND_BLOCKS = 64
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
TAGS_REMEMBERED = 1024  # distinct tag sets whose streams are kept parsed (``node_streams``)


@functools.lru_cache(maxsize=TAGS_REMEMBERED)
def node_streams(tags: bytes, monitored: frozenset[bytes]) -> tuple[bytes, ...] | None:
    """The streams that a log entry tagged ``tags`` names, if a node that monitors
    ``monitored`` replays it (``is_for_node``), else None."""
    streams = parse_stream_tags(tags)
    return streams if streams is not None and is_for_node(KvTransaction(0, b"", streams), monitored) else None


@dataclass(frozen=True)
class ReplayConfig:
    monitored: frozenset[bytes]
    first_block: int = 0
    confirmations: int = 0
    poll_s: float = 0.2
    data_deadline_s: float = 60.0  # how long a transaction's data may stay unavailable
    max_tx_bytes: int = 64 * 1024 * 1024
    batch_entries: int = 256  # log entries replayed per store transaction (one fsync)


@dataclass
class ReplayStatus:
    head: int = -1
    synced_block: int = -1
    waiting_for: int | None = None  # the log entry whose data is being fetched
    errors: int = 0
    last_error: str = ""
    reorgs: int = 0


Fetch = Callable[[LogEntry], bytes]  # the verified bytes of an entry's file; raises StorageError


class Replayer:
    """The thread that turns log entries into KV state."""

    def __init__(self, store: KvStore, flow: FlowContract, fetch: Fetch, config: ReplayConfig) -> None:
        self.store = store
        self.flow = flow
        self.fetch = fetch
        self.config = config
        self.status = ReplayStatus()
        self.acl_answers: dict[tuple[str, tuple[object, ...]], object] = {}  # until access control changes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kv-replay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        while not self._stop.is_set():
            try:
                if self.step():
                    self._stop.wait(self.config.poll_s)
                backoff = MIN_BACKOFF_S
            except Exception as exc:  # every failure is retried: replay must never stall
                self.status.errors += 1
                self.status.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("kv replay: %s; retrying in %.1fs", self.status.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _block_hash(self, number: int) -> bytes:
        return bytes(self.flow.chain.w3.eth.get_block(number)["hash"])

    def _reorganised(self, next_block: int, parent_hash: bytes | None) -> bool:
        if parent_hash is None or next_block <= self.config.first_block or self._block_hash(next_block - 1) == parent_hash:
            return False
        fork = max(self.config.first_block, next_block - REORG_REWIND_BLOCKS)
        dropped = self.store.rewind(fork, self._block_hash(fork - 1) if fork > 0 else None)
        self.acl_answers.clear()
        self.status.reorgs += 1
        log.warning("kv replay: block %d was reorganised away; replaying %d entries from block %d",
                    next_block - 1, dropped, fork)
        return True

    def step(self) -> bool:
        """Replay one page of log; True when caught up with ``head - confirmations``."""
        cursor = self.store.cursor()
        self.status.head = self.flow.chain.block_number()
        target = self.status.head - self.config.confirmations
        if self._reorganised(cursor.next_block, cursor.parent_hash):
            return False
        if cursor.next_block > target:
            self.status.synced_block = target
            return True
        end = min(target, cursor.next_block + LOG_PAGE_BLOCKS - 1)
        end_hash = self._block_hash(end)
        page = sorted(self.flow.submit_events(cursor.next_block, end), key=lambda e: e.seq)
        if self._block_hash(end) != end_hash:
            return False  # the chain moved under this page: read it again
        expected = cursor.next_seq if cursor.next_seq != NO_ENTRY_YET else (page[0].seq if page else 0)
        entries = [e for e in page if e.seq >= expected]
        for offset, entry in enumerate(entries):
            if entry.seq != expected + offset:
                raise RuntimeError(f"log entry {entry.seq} arrived before {expected + offset}")
        size = self.config.batch_entries
        for first in range(0, len(entries), size):
            if self._stop.is_set():
                return False
            self.replay_batch(entries[first:first + size])
        self.store.advance_blocks(end + 1, end_hash)
        self.status.synced_block = end
        return end >= target

    def replay_batch(self, entries: list[LogEntry]) -> None:
        """Replay consecutive entries in one store transaction (one fsync for all). Their data
        is fetched first, outside it, so reads are never held up by a slow download."""
        log.info("kv replay: log entries %d..%d", entries[0].seq, entries[-1].seq)
        txs = [(entry, self._transaction(entry)) for entry in entries]
        prefetched = {entry.seq: self._fetch_until_deadline(entry) for entry, tx in txs
                      if tx is not None and self._refusal(tx, entry) is None}
        try:
            with self.store.transaction():
                for entry, tx in txs:
                    self._replay(entry, tx, prefetched)
        except BaseException:
            self.acl_answers.clear()  # they may describe commits that were rolled back
            raise

    def replay_entry(self, entry: LogEntry) -> None:
        """Replay one log entry (or record that it is not this node's) and move past it."""
        self._replay(entry, self._transaction(entry), {})

    def _replay(self, entry: LogEntry, tx: KvTransaction | None, prefetched: dict[int, bytes | None]) -> None:
        if tx is None:
            self.store.record(entry.seq, entry.block_number, None)
            return
        result = self._outcome(tx, entry, prefetched)
        commit = result if isinstance(result, Commit) else None
        if commit is not None and commit.controls:
            self.acl_answers.clear()
        self.store.record(entry.seq, entry.block_number, result if isinstance(result, str) else result.result, commit)
        log.info("kv replay: tx %d %s", entry.seq, commit.result if commit else result)

    def _transaction(self, entry: LogEntry) -> KvTransaction | None:
        """The entry as a KV transaction of this node, or None."""
        streams = node_streams(entry.submission.tags, self.config.monitored)
        return None if streams is None else \
            KvTransaction(entry.seq, bytes.fromhex(entry.sender.removeprefix("0x")), streams)

    def _refusal(self, tx: KvTransaction, entry: LogEntry) -> str | None:
        """Why ``tx`` fails before its data is fetched (no write permission, too big), or None."""
        if refused := check_sender(tx, MemoView(self.store.at(), self.acl_answers)):
            return refused.result
        if entry.size > self.config.max_tx_bytes:
            return f"{DATA_PARSE_ERROR}: {entry.size} bytes, over this node's limit of {self.config.max_tx_bytes}"
        return None

    def _outcome(self, tx: KvTransaction, entry: LogEntry, prefetched: dict[int, bytes | None]) -> Commit | str:
        if entry.seq in prefetched:  # ``process_transaction`` checks the sender again, on the current state
            raw = prefetched[entry.seq]
        elif refused := self._refusal(tx, entry):
            return refused
        else:
            raw = self._fetch_until_deadline(entry)
        if raw is None:
            return DATA_UNAVAILABLE
        view = MemoView(self.store.at(), self.acl_answers)  # one transaction's state does not change
        outcome = process_transaction(tx, raw, self.config.monitored, view)
        return outcome if isinstance(outcome, Commit) else outcome.result

    def _fetch_until_deadline(self, entry: LogEntry) -> bytes | None:
        """The entry's verified bytes, retried with backoff; None after ``data_deadline_s``."""
        deadline = time.monotonic() + self.config.data_deadline_s
        backoff = MIN_BACKOFF_S
        self.status.waiting_for = entry.seq
        try:
            while not self._stop.is_set():
                try:
                    return self.fetch(entry)
                except StorageError as exc:
                    if time.monotonic() + backoff > deadline:
                        log.warning("kv replay: tx %d data unavailable after %.0fs: %s",
                                    entry.seq, self.config.data_deadline_s, exc)
                        return None
                    self._stop.wait(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
            raise InterruptedError("stopping")  # leave the entry for the next start
        finally:
            self.status.waiting_for = None
