"""Restart repair: before peer sync starts, the node scans its store once. Segments whose bytes
no longer match their root or proof are deleted, and finalized files missing a segment of the
node's shard are reopened, so peer sync fetches them again."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Protocol

from zgos.storage.fasthash import segment_root as fast_segment_root
from zgos.storage.spec.merkle import InvalidProof, Proof
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof, validate_segment

if TYPE_CHECKING:
    from zgos.storage.contracts import LogEntry
    from zgos.storage.node.store import Store
    from zgos.storage.spec.shard import ShardConfig

log = logging.getLogger(__name__)


class RepairedNode(Protocol):
    """What the repair reads and calls on the node (``StorageNode``)."""

    store: Store
    shard: ShardConfig

    def missing_segments(self, entry: LogEntry) -> list[int]: ...
    def finalize_if_complete(self, entry: LogEntry) -> bool: ...


class RestartRepair:
    """The restart scan of one node's store, and what it repaired."""

    def __init__(self, node: RepairedNode) -> None:
        self.node = node
        self.repaired: dict[str, int] = {"corrupt": 0, "reopened": 0}

    def scan(self) -> None:
        """Delete stored segments that fail their root or proof; reopen finalized files that
        miss a segment of this node's shard (they are then fetched from peers)."""
        for entry in self.node.store.entries():
            self._drop_corrupt(entry)
            self._reopen_if_incomplete(entry)

    def _drop_corrupt(self, entry: LogEntry) -> None:
        store = self.node.store
        bad = [index for index in store.segment_indexes(entry.seq) if not self._segment_intact(entry, index)]
        if bad:
            store.delete_segments(entry.seq, bad)
            self.repaired["corrupt"] += len(bad)
            log.warning("restart scan: %d corrupted segment(s) of file %d deleted (%s); re-fetching from peers",
                        len(bad), entry.seq, bad[:8])

    def _reopen_if_incomplete(self, entry: LogEntry) -> None:
        record = self.node.store.tx(entry.seq)
        if record is not None and record.finalized and self.node.missing_segments(entry):
            self.node.store.unfinalize(entry.seq)
            self.repaired["reopened"] += 1
            log.warning("restart scan: file %d misses segments of shard %s; re-fetching from peers",
                        entry.seq, self.node.shard)
        elif record is not None and not record.finalized:
            self.node.finalize_if_complete(entry)

    def _segment_intact(self, entry: LogEntry, index: int) -> bool:
        data = self.node.store.segment(entry.seq, index)
        proof_text = self.node.store.segment_proof(entry.seq, index)
        if data is None:
            return True
        if proof_text is None:  # stored before proofs were kept: the full-tree check serves it
            return True
        try:
            proof = Proof.from_json(json.loads(proof_text))
            validate_segment(SegmentWithProof(entry.data_root, data, index, proof, entry.size),
                             entry.data_root, entry.size, fast_segment_root)
        except (InvalidSegment, InvalidProof, ValueError):
            return False
        return True
