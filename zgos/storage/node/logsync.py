"""Log sync: follow the Flow contract's ``Submit`` events into the node's store.

Behaviour (fixes for 0G node issues #72/#76/#120, storage.md §4.2, §9):
* Reads ``eth_getLogs`` in pages of ``LOG_PAGE_BLOCKS`` from the persisted cursor up to
  ``head - confirmations``; each page's entries and the new cursor are stored in one
  transaction, so a restart (even after ``kill -9``) resumes exactly where it stopped.
* Any RPC error (chain down, timeout, bad answer) is logged and retried with exponential
  backoff capped at ``MAX_BACKOFF_S``; the loop never exits on its own and catches up as soon as
  the chain answers again. Progress is logged every page during catch-up.
* Entries must arrive with consecutive ``seq``; a gap means the node missed events (e.g. the
  cursor was moved) and the page is re-read rather than stored with a hole.
* Reorganisations: the hash of the last synced block is stored with the cursor; when the chain
  no longer has that block, the node forgets the last ``REORG_REWIND_BLOCKS`` blocks of entries
  (their uploaded segments are parked, not lost) and syncs them again. A page is kept only if
  its last block's hash did not change while its logs were read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from zgos.chain.client import Chain
from zgos.storage.contracts import FlowContract, LogEntry
from zgos.storage.node.store import Store

log = logging.getLogger(__name__)

LOG_PAGE_BLOCKS = 999
MIN_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
REORG_REWIND_BLOCKS = 64


@dataclass
class SyncState:
    head: int = -1  # last block seen on the chain
    synced_block: int = -1  # last block fully synced
    errors: int = 0
    last_error: str = ""
    reorgs: int = 0


class LogSync:
    """The thread that turns ``Submit`` events into stored log entries."""

    def __init__(
        self,
        rpc_url: str,
        flow_address: str,
        store: Store,
        start_block: int,
        confirmations: int,
        poll_s: float,
        on_entries: Callable[[list[LogEntry]], None],
        on_rewind: Callable[[], None] = lambda: None,
    ) -> None:
        self.rpc_url = rpc_url
        self.flow_address = flow_address
        self.store = store
        self.start_block = start_block
        self.confirmations = confirmations
        self.poll_s = poll_s
        self.on_entries = on_entries
        self.on_rewind = on_rewind
        self.state = SyncState()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-sync", daemon=True)
        self._flow: FlowContract | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _contract(self) -> FlowContract:
        if self._flow is None:
            self._flow = FlowContract(Chain(self.rpc_url), self.flow_address)
        return self._flow

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        while not self._stop.is_set():
            try:
                caught_up = self.step()
                backoff = MIN_BACKOFF_S
                if caught_up:
                    self._stop.wait(self.poll_s)
            except Exception as exc:  # every failure is retried: the loop must never stall
                self.state.errors += 1
                self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("log sync: %s; retrying in %.1fs", self.state.last_error, backoff)
                self._flow = None  # reconnect next time
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    @staticmethod
    def _block_hash(flow: FlowContract, number: int) -> bytes:
        return bytes(flow.chain.w3.eth.get_block(number)["hash"])

    def step(self) -> bool:
        """Sync one page; return True when caught up with ``head - confirmations``."""
        flow = self._contract()
        head = flow.chain.block_number()
        self.state.head = head
        target = head - self.confirmations
        start = self.store.next_block(self.start_block)
        expected_hash = self.store.cursor_hash()
        if start - 1 > head:  # the chain is shorter than what was synced (a reorganisation, or a lagging
            return True       # RPC): wait at the poll interval for it to grow past the cursor, then compare
        if expected_hash is not None and start > 0 and self._block_hash(flow, start - 1) != expected_hash:
            fork = max(self.start_block, start - REORG_REWIND_BLOCKS)
            removed = self.store.rewind(fork, self._block_hash(flow, fork - 1) if fork > 0 else None)
            self.state.reorgs += 1
            log.warning("log sync: block %d was reorganised away; forgot %d entries from block %d", start - 1, removed, fork)
            self.on_rewind()
            return False
        if start > target:
            self.state.synced_block = target
            return True
        end = min(target, start + LOG_PAGE_BLOCKS - 1)
        end_hash = self._block_hash(flow, end)
        entries = sorted(flow.submit_events(start, end), key=lambda e: e.seq)
        if self._block_hash(flow, end) != end_hash:
            return False  # the chain moved under this page: read it again
        expected = self.store.next_seq()
        entries = [e for e in entries if e.seq >= expected]
        for offset, entry in enumerate(entries):
            if entry.seq != expected + offset:
                raise RuntimeError(f"log entry {entry.seq} arrived before {expected + offset}")
        self.store.add_entries(entries, end + 1, end_hash)
        self.state.synced_block = end
        if entries:
            self.on_entries(entries)
        if end < target:
            log.info("log sync: catching up, block %d of %d", end, target)
        return end >= target
