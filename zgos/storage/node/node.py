"""The storage node: store + log sync + upload cache + flow tree, wired in one place.

``StorageNode`` owns the parts and implements the operations the RPC layer exposes; each part
keeps its own state (``Store`` durable, ``UploadCache`` and ``FlowTree`` rebuilt or refilled
after a restart). Restart behaviour: the store and sync cursor are durable; the flow tree is
replayed from stored entries; cached pre-transaction segments are lost and re-sent by clients."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from zgos.chain.client import Chain
from zgos.chain.registry import NodeRegistry
from zgos.runtime.addresses import AddressPolicy
from zgos.storage.contracts import LogEntry
from zgos.storage.discovery import Prober, ProbeRound, candidates, useful_candidates
from zgos.storage.fasthash import segment_root as fast_segment_root
from zgos.storage.node.dishonest import DROP_HALF, ForgetfulStore
from zgos.storage.node.errors import AlreadyFinalized, DataUnavailable, FileNotFound, OutOfShard
from zgos.storage.node.logsync import LogSync
from zgos.storage.node.peersync import PeerSync, SyncConfig
from zgos.storage.node.pruner import Pruner
from zgos.storage.node.repair import RestartRepair
from zgos.storage.node.store import SegmentBatch, Store, TxRecord
from zgos.storage.node.uploads import UploadCache
from zgos.storage.spec.flow import (
    FlowItem,
    FlowTree,
    InnerRoot,
    compute_flow_items,
    compute_flow_proof,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.merkle import (
    BYTES_PER_SECTOR,
    SECTORS_PER_SEGMENT,
    SEGMENT_HEIGHT,
    ZERO_SECTOR_HASH,
    PromoteTree,
    Proof,
    compute_leaf_hashes,
)
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_padding_segment_root,
    compute_revealed_roots,
    validate_segment,
)
from zgos.storage.spec.shard import (
    FULL_SHARD,
    ShardConfig,
    compute_flow_segment,
    compute_shard_segments,
)

log = logging.getLogger(__name__)

PROOF_TREE_CACHE = 16


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    rpc_url: str
    flow_address: str
    chain_id: int
    start_block: int = 0
    confirmations: int = 3
    poll_s: float = 0.5
    durable_fsync: bool = False
    max_cache_file_bytes: int = 10 * 1024 * 1024
    shard: ShardConfig = FULL_SHARD
    sync: SyncConfig = field(default_factory=SyncConfig)
    # Which non-global addresses announced peer URLs may name (the devnet allows loopback).
    outbound: AddressPolicy = field(default_factory=AddressPolicy)
    dishonest: str | None = None  # test-only: "drop-half" (zgos.storage.node.dishonest)


class StorageNode:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        store_type = ForgetfulStore if config.dishonest == DROP_HALF else Store
        self.store = store_type(config.data_dir / "store.sqlite", durable_fsync=config.durable_fsync)
        self.shard = config.shard
        self._note_shard()
        self.cache = UploadCache(max_file_bytes=config.max_cache_file_bytes)
        self.flow = FlowTree()
        self._flow_lock = threading.Lock()
        self._proof_trees: OrderedDict[int, PromoteTree] = OrderedDict()
        self._items: list[FlowItem] | None = None  # the flow's aligned subtrees, for sector proofs
        for entry in self.store.entries():
            self.flow.append_submission(entry.submission)
        self.sync = LogSync(config.rpc_url, config.flow_address, self.store, config.start_block, config.confirmations,
                            config.poll_s, self._on_entries, self._on_rewind)
        self.prober = Prober(config.outbound, config.chain_id, config.flow_address)
        self._registry: NodeRegistry | None = None
        self.repair = RestartRepair(self)
        self.pruner = Pruner(self, config.sync.prune_grace_s, config.sync.prune_interval_s)
        self.peer_sync = PeerSync(self, config.sync, self._discover_peers, config.outbound,
                                  repair=self.repair, pruner=self.pruner)

    def start(self) -> None:
        self.sync.start()
        self.peer_sync.start()

    def stop(self) -> None:
        self.peer_sync.stop()
        self.sync.stop()
        self.prober.close()

    # --- shard and peers -----------------------------------------------------------------

    def _note_shard(self) -> None:
        """Persist the shard; a change starts the pruning grace period of the old shard's data."""
        stored = self.store.get_meta("shard")
        if stored is not None and stored != str(self.shard):
            log.warning("shard changed from %s to %s: re-syncing; old data kept until the prune grace ends",
                        stored, self.shard)
            self.store.set_meta("shard_changed_at", repr(time.time()))
        self.store.set_meta("shard", str(self.shard))

    def shard_changed_at(self) -> float | None:
        """Wall-clock time of the last shard change whose old data is not pruned yet."""
        value = self.store.get_meta("shard_changed_at")
        return float(value) if value else None

    def prune_done(self) -> None:
        self.store.set_meta("shard_changed_at", "")

    def _discover_peers(self) -> ProbeRound:
        """One discovery round over the static peers and the registry nodes whose shard meets this
        node's (never itself), within one probe deadline; the prober backs off misbehaving ones."""
        sync = self.config.sync
        if sync.registry_address and self._registry is None:
            self._registry = NodeRegistry(Chain(self.config.rpc_url), sync.registry_address)
        own = (sync.self_url or "").rstrip("/")
        found = [c for c in candidates(self._registry, sync.peers) if c.url.rstrip("/") != own]
        return self.prober.run(useful_candidates(found, self.shard))

    # --- log entries ---------------------------------------------------------------------

    def _on_rewind(self) -> None:
        """Entries were forgotten after a reorganisation: rebuild what derives from them."""
        with self._flow_lock:
            self.flow = FlowTree()
            for entry in self.store.entries():
                self.flow.append_submission(entry.submission)
            self._items = None
        self._proof_trees.clear()

    def _on_entries(self, entries: list[LogEntry]) -> None:
        with self._flow_lock:
            for entry in entries:
                self.flow.append_submission(entry.submission)
            self._items = None
        for entry in entries:
            done = [r for r in self.store.txs_by_root(entry.data_root) if r.finalized and r.entry.size == entry.size]
            if done:  # same file submitted again: reuse the data we hold
                self.store.copy_segments(done[0].entry.seq, entry.seq)
                self._maybe_finalize(entry)
                continue
            if self.store.unpark(entry.data_root, entry.size, entry.seq):
                self._maybe_finalize(entry)  # a file back after a reorganisation keeps its data
            cached = self.cache.pop(entry.data_root, entry.size)
            if cached is not None:
                for index, (segment_root, data, proof) in cached.segments.items():
                    if self.shard.holds(compute_flow_segment(entry.start_entry, index)):
                        self.store.put_segment(entry.seq, index, segment_root, data, proof)
            self._maybe_finalize(entry)  # also: a file with no segment in this shard
            log.info("synced tx %d root 0x%s (%d bytes)", entry.seq, entry.data_root.hex(), entry.size)

    def shard_segments(self, entry: LogEntry) -> range:
        """The file segment indexes this node must hold."""
        return compute_shard_segments(entry.start_entry, compute_segment_count(entry.size), self.shard)

    def missing_segments(self, entry: LogEntry) -> list[int]:
        held = set(self.store.segment_indexes(entry.seq))
        return [i for i in self.shard_segments(entry) if i not in held]

    def finalize_if_complete(self, entry: LogEntry) -> bool:
        return self._maybe_finalize(entry)

    def _maybe_finalize(self, entry: LogEntry) -> bool:
        """Finalize the file once every segment of this node's shard is stored (counted first:
        listing the held segments after each upload would cost O(n) per segment)."""
        if self.store.count_segments(entry.seq) >= len(self.shard_segments(entry)) and not self.missing_segments(entry):
            self.store.finalize(entry.seq)
            log.info("finalized tx %d", entry.seq)
            return True
        return False

    # --- lookups -------------------------------------------------------------------------

    def tx_by_seq(self, seq: int) -> TxRecord:
        record = self.store.tx(seq)
        if record is None:
            raise FileNotFound(f"no file with tx seq {seq} on this node", "wait for log sync or check the seq")
        return record

    def tx_by_root(self, root: bytes, prefer_unfinalized: bool = False) -> TxRecord | None:
        records = self.store.txs_by_root(root)
        if not records:
            return None
        if prefer_unfinalized:
            open_ones = [r for r in records if not r.finalized]
            return open_ones[0] if open_ones else records[0]
        finalized = [r for r in records if r.finalized]
        return finalized[0] if finalized else records[0]

    # --- uploads -------------------------------------------------------------------------

    def upload_segment(self, segment: SegmentWithProof, tx_seq: int | None = None,
                       batch: SegmentBatch | None = None) -> bool:
        """Validate and store (or cache) one segment; False if it was already held. With a
        ``batch`` of its file (``open_batch``), it is held once ``close_batch`` commits it.
        Raises ``InvalidSegment``, ``FileNotFound`` or ``AlreadyFinalized`` naming the reason;
        nothing is stored unless every check passes."""
        record = self.tx_by_seq(tx_seq) if tx_seq is not None else self.tx_by_root(segment.root, True)
        if record is None:
            self.cache.check_size(segment.file_size)
            segment_root = validate_segment(segment, segment_root_fn=fast_segment_root)
            return self.cache.put(segment.root, segment.file_size, segment.index, segment_root, segment.data,
                                  _proof_text(segment.proof))
        entry = record.entry
        if record.finalized:
            raise AlreadyFinalized(f"file {entry.seq} is already uploaded and finalized")
        flow_segment = compute_flow_segment(entry.start_entry, segment.index)
        if not self.shard.holds(flow_segment):
            raise OutOfShard(f"segment {segment.index} of file {entry.seq} is flow segment {flow_segment}, outside this "
                             f"node's shard {self.shard} (it stores flow segments s with s % {self.shard.num_shard} == "
                             f"{self.shard.shard_id})", "send it to a node of that shard (zgs_getShardConfig)")
        segment_root = validate_segment(segment, entry.data_root, entry.size, fast_segment_root)
        if batch is not None and batch.seq == entry.seq:
            return batch.add(segment.index, segment_root, segment.data, _proof_text(segment.proof))
        stored = self.store.put_segment(entry.seq, segment.index, segment_root, segment.data, _proof_text(segment.proof))
        self._maybe_finalize(entry)
        return stored

    def open_batch(self, tx_seq: int) -> SegmentBatch:
        return SegmentBatch(self.store, tx_seq)  # one request's segments: one fsync, one commit

    def close_batch(self, batch: SegmentBatch) -> int:
        """Commit the batch's segments and finalize their file if complete; how many were new."""
        stored, record = batch.commit(), self.store.tx(batch.seq)
        if stored and record is not None:
            self._maybe_finalize(record.entry)
        return stored

    # --- downloads -----------------------------------------------------------------------

    def _proof_tree(self, record: TxRecord) -> PromoteTree:
        seq = record.entry.seq
        tree = self._proof_trees.get(seq)
        if tree is None:
            if not record.finalized:
                raise DataUnavailable(f"file {seq} is not finalized on this node yet")
            size = record.entry.size
            roots = self.store.segment_roots(seq)
            roots += [compute_padding_segment_root(size, i) for i in range(len(roots), compute_proof_segment_count(size))]
            tree = PromoteTree(roots)
            if tree.root != record.entry.data_root:
                raise DataUnavailable(f"stored data of file {seq} does not match its root")
            self._proof_trees[seq] = tree
            while len(self._proof_trees) > PROOF_TREE_CACHE:
                self._proof_trees.popitem(last=False)
        else:
            self._proof_trees.move_to_end(seq)
        return tree

    def segment_with_proof(self, record: TxRecord, index: int) -> SegmentWithProof:
        size = record.entry.size
        if not 0 <= index < compute_segment_count(size):
            raise InvalidSegment(f"segment index {index} is beyond the file's {compute_segment_count(size)} segments")
        data = self.store.segment(record.entry.seq, index)
        if data is None:
            raise DataUnavailable(f"segment {index} of file {record.entry.seq} is not stored here")
        return SegmentWithProof(record.entry.data_root, data, index, self.proof(record, index), size)

    def proof(self, record: TxRecord, index: int) -> Proof:
        """The segment's proof as received (checked then), else from the tree of all its segments."""
        return self.proof_from(record, index, self.store.segment_proof(record.entry.seq, index))

    def proof_from(self, record: TxRecord, index: int, stored: str | None) -> Proof:
        """``proof``, given the segment's stored proof (``Store.segment_proof``) already read."""
        return Proof.from_json(json.loads(stored)) if stored is not None else self._proof_tree(record).proof(index)

    def chunks(self, record: TxRecord, start: int, end: int) -> bytes:
        """File sectors ``[start, end)`` (end exclusive, at most the file's sector count)."""
        sectors = -(-record.entry.size // BYTES_PER_SECTOR)
        if not 0 <= start < end <= sectors:
            raise InvalidSegment(f"chunk range [{start}, {end}) is outside the file's {sectors} chunks")
        if end - start > SECTORS_PER_SEGMENT:
            raise InvalidSegment(f"at most {SECTORS_PER_SEGMENT} chunks per request")
        out = bytearray()
        for index in range(start // SECTORS_PER_SEGMENT, (end - 1) // SECTORS_PER_SEGMENT + 1):
            data = self.store.segment(record.entry.seq, index)
            if data is None:
                raise DataUnavailable(f"segment {index} of file {record.entry.seq} is not stored here")
            base = index * SECTORS_PER_SEGMENT
            lo = max(start, base) - base
            hi = min(end, base + SECTORS_PER_SEGMENT) - base
            out += data[lo * BYTES_PER_SECTOR : hi * BYTES_PER_SECTOR]
        return bytes(out)

    def sector_proof(self, sector: int, flow_root: bytes | None) -> Proof:
        """Proof of a flow sector under the current flow root (historical roots: not kept).

        Its cost is one segment whatever the file's size (``_sector_inner_roots``): no file is
        re-read or re-hashed. Raises ``DataUnavailable`` for another flow root or a segment this
        node does not hold, ``InvalidSegment`` for a sector outside the flow.
        """
        root, length = self.flow_context()
        if flow_root is not None and flow_root != root:
            raise DataUnavailable("only proofs under the current flow root are served", "omit flowRoot")
        if not 0 <= sector < length:
            raise InvalidSegment(f"sector {sector} is outside the flow of {length} sectors")
        return compute_flow_proof(self._flow_items(), sector, self._sector_inner_roots(sector))

    def challenged_sector(self, tx_seq: int, sector: int) -> tuple[bytes, Proof]:
        """Flow ``sector`` of file ``tx_seq`` (its 256 bytes, zero-padded past the data) and its
        proof under the flow root right after that file: the answer to a storage challenge
        (``zgos.storage.spec.challenges``). Raises ``DataUnavailable`` if the sector is not
        stored here, ``InvalidSegment`` if it is not in the file's data."""
        record = self.tx_by_seq(tx_seq)
        offset = sector - record.entry.start_entry
        data = self.chunks(record, offset, offset + 1).ljust(BYTES_PER_SECTOR, b"\0")
        items = self._flow_items()
        last = max((i for i, item in enumerate(items) if item.seq == tx_seq), default=None)
        if last is None:
            raise DataUnavailable(f"file {tx_seq} is not in this node's flow yet")
        return data, compute_flow_proof(items[: last + 1], sector, self._sector_inner_roots(sector))

    def _flow_items(self) -> list[FlowItem]:
        """The flow as aligned subtrees, kept until the log changes."""
        with self._flow_lock:
            if self._items is None:
                self._items = compute_flow_items([(e.seq, e.submission) for e in self.store.entries()])
            return self._items

    def _sector_inner_roots(self, sector: int) -> InnerRoot:
        """The subtree roots inside a submission node that the proof of ``sector`` needs.

        ``compute_flow_proof`` asks only for subtrees on the sector's path and their siblings,
        and only those inside a submission node come here: all lie in the sector's own node. Below
        a segment they are roots over that one segment's sectors (read and hashed once); from a
        segment up they are revealed by the segment's proof (stored with the segment, or from the
        file's cached segment-root tree), since a submission node is a complete subtree of the
        file's promote tree.
        """
        segment_levels: dict[int, PromoteTree] = {}
        revealed: dict[int, dict[tuple[int, int], bytes]] = {}

        def inner(item: FlowItem, position: int, height: int) -> bytes:
            assert item.seq is not None
            record = self.tx_by_seq(item.seq)
            start, size = record.entry.start_entry, record.entry.size
            segment = (sector - start) // SECTORS_PER_SEGMENT
            if height >= SEGMENT_HEIGHT:
                if segment not in revealed:
                    revealed[segment] = compute_revealed_roots(self.proof(record, segment),
                                                               compute_proof_segment_count(size))
                lo = (position - start) >> SEGMENT_HEIGHT
                found = revealed[segment].get((lo, lo + (1 << (height - SEGMENT_HEIGHT))))
                if found is None:
                    raise DataUnavailable(f"the proof of segment {segment} of file {item.seq} does not reveal "
                                          f"flow sectors {position}..{position + (1 << height) - 1}")
                return found
            if segment not in segment_levels:
                segment_levels[segment] = PromoteTree(self._segment_leaves(record, segment))
            return segment_levels[segment].subtree_root(position - start - segment * SECTORS_PER_SEGMENT, height)

        return inner

    def _segment_leaves(self, record: TxRecord, index: int) -> list[bytes]:
        """The 1024 sector hashes of segment ``index`` (zero sectors past the file's data)."""
        if index < compute_segment_count(record.entry.size):
            data = self.store.segment(record.entry.seq, index)
            if data is None:
                raise DataUnavailable(f"segment {index} of file {record.entry.seq} is not stored here")
            leaves = compute_leaf_hashes(data)
        else:
            leaves = []
        return leaves + [ZERO_SECTOR_HASH] * (SECTORS_PER_SEGMENT - len(leaves))

    def flow_context(self) -> tuple[bytes, int]:
        with self._flow_lock:
            return self.flow.root, self.flow.length


def _proof_text(proof: Proof) -> str:
    return json.dumps(proof.to_json(), separators=(",", ":"))
