"""The pruner (0G's separate pruner): segments outside the node's shard, left by a shard change,
are deleted only from files the node holds completely in its new shard, and only
``grace_s`` after the change, so a shard change never drops data the node still needs or
serves before re-syncing."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from zgos.storage.contracts import LogEntry
    from zgos.storage.node.store import Store
    from zgos.storage.spec.shard import ShardConfig

log = logging.getLogger(__name__)


class PrunedNode(Protocol):
    """What the pruner reads and calls on the node (``StorageNode``)."""

    store: Store
    shard: ShardConfig

    def shard_segments(self, entry: LogEntry) -> range: ...
    def shard_changed_at(self) -> float | None: ...
    def prune_done(self) -> None: ...


class Pruner:
    """Prunes one node's old-shard data, at most every ``interval_s`` (``run_due``)."""

    def __init__(self, node: PrunedNode, grace_s: float, interval_s: float) -> None:
        self.node = node
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.pruned = 0
        self._next = 0.0

    def run_due(self, now: float) -> None:
        """``prune`` if ``interval_s`` passed since the last pass (``now``: a monotonic clock)."""
        if now >= self._next:
            self.prune()
            self._next = now + self.interval_s

    def prune(self) -> None:
        """Drop out-of-shard segments of fully held files once the grace period has passed."""
        changed_at = self.node.shard_changed_at()
        if changed_at is None or time.time() - changed_at < self.grace_s:
            return
        pending = False  # old-shard data of files not re-synced yet: kept, pruned on a later pass
        for entry in self.node.store.entries():
            pending = self._prune_file(entry) or pending
        if not pending:
            self.node.prune_done()

    def _prune_file(self, entry: LogEntry) -> bool:
        """Prune one file's out-of-shard segments; True if they must wait for its re-sync."""
        store = self.node.store
        record = store.tx(entry.seq)
        if record is None:
            return False
        mine = set(self.node.shard_segments(entry))
        extra = [i for i in store.segment_indexes(entry.seq) if i not in mine]
        if extra and not record.finalized:
            return True
        if extra:
            self.pruned += store.delete_segments(entry.seq, extra)
            log.info("pruned %d segment(s) of file %d outside shard %s", len(extra), entry.seq, self.node.shard)
        return False
