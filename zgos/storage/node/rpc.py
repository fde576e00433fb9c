"""JSON-RPC 2.0 methods of a storage node, in 0G's names and JSON shapes (storage.md §5.1).

``NodeRpc(node).methods`` is the node's method table; ``node_rpc_server`` serves it with the
one dispatch of ``zgos.runtime.jsonrpc`` (errors, batches, caps). Bad parameters are
invalid-params errors (an integer out of ``0..2^63-1`` included); a ``ZgError`` raised by the
node becomes error ``-32000`` with its message (e.g. ``invalid proof: proof is for position 3,
not 2``). ``admin_*`` and ``miner_*`` methods are local: they answer a loopback client carrying
the install token, with this node's address as Host and no foreign Origin. Expensive public
methods (uploads, downloads, sector proofs) cost one unit per segment of work against the
client's rate limit (``compute_call_cost``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.jsonrpc import (
    INVALID_PARAMS,
    MAX_BATCH_CALLS,
    MAX_RESPONSE_BYTES,
    Call,
    JsonRpcServer,
    Method,
    Params,
    RpcError,
    parse_params,
)
from zgos.runtime.ratelimit import ClientRateLimiter
from zgos.storage.node.errors import AlreadyFinalized, DataUnavailable, FileNotFound
from zgos.storage.node.node import StorageNode
from zgos.storage.node.rpcmodels import (
    CheckFinalizedParams,
    FileInfo,
    FileInfoParams,
    FileLocation,
    IndexByRootParams,
    IndexByTxSeqParams,
    NetworkIdentity,
    NetworkInfo,
    NodeStatus,
    ProtocolVersion,
    RangeByRootParams,
    RangeByTxSeqParams,
    SectorProofParams,
    SegmentByTxSeqParams,
    SegmentParams,
    SegmentsByTxSeqParams,
    SegmentsParams,
    SyncInfo,
    Transaction,
    TxSeqParams,
)
from zgos.storage.node.store import TxRecord
from zgos.storage.node.syncstatus import file_status, peers_json, sync_info
from zgos.storage.spec.segment import ALREADY_FINALIZED_ERROR_CODE, SegmentWithProof

log = logging.getLogger(__name__)

LOCAL_PREFIXES = ("admin_", "miner_")
# Units of work against the per-client rate limit: one per segment read, hashed or proven.
SEGMENT_COSTS = {
    "zgs_uploadSegment": 1, "zgs_uploadSegmentByTxSeq": 1,
    "zgs_downloadSegment": 1, "zgs_downloadSegmentByTxSeq": 1,
    "zgs_downloadSegmentWithProof": 1, "zgs_downloadSegmentWithProofByTxSeq": 1,
    "zgs_getSectorProof": 1,
}
PER_SEGMENT_OF_PARAM_0 = ("zgs_uploadSegments", "zgs_uploadSegmentsByTxSeq")
P2P_PROTOCOL_VERSION = ProtocolVersion(major=0, minor=4, build=0)  # what 0G's SDK expects


def is_local_method(method: str) -> bool:
    """Admin and miner methods: only for the node's operator (see the module docstring)."""
    return method.startswith(LOCAL_PREFIXES)


def compute_call_cost(call: Call) -> int:
    """Segments of work ``call`` asks for: 1 per segment uploaded, downloaded or proven, 0 for
    cheap lookups (an upload batch costs its length, whatever its items turn out to be)."""
    if call.method in PER_SEGMENT_OF_PARAM_0:
        segments = call.params[0] if call.params else None
        return max(1, len(segments)) if isinstance(segments, list) else 1
    return SEGMENT_COSTS.get(call.method, 0)


def node_rpc_server(rpc: NodeRpc, *, access: LocalAccess | None, rate: ClientRateLimiter | None,
                    max_batch_calls: int = MAX_BATCH_CALLS,
                    max_response_bytes: int = MAX_RESPONSE_BYTES) -> JsonRpcServer:
    """The node's methods behind the one JSON-RPC dispatch, with its local methods and costs."""
    return JsonRpcServer(rpc.methods, max_batch_calls=max_batch_calls, max_response_bytes=max_response_bytes,
                         is_local=is_local_method, access=access, cost=compute_call_cost, rate=rate)


class NodeRpc:
    """The storage node's method table (0G's names and shapes): params are parsed into their
    models once, here; the handlers call the node and shape its answers into the result models.

    Parts beside the node (the miner) extend it through ``add_methods`` and ``add_status``."""

    def __init__(self, node: StorageNode, shutdown: Callable[[], None] | None = None) -> None:
        self.node = node
        self.shutdown = shutdown
        self._status_parts: dict[str, Callable[[], Any]] = {}
        self.methods: dict[str, Method] = {
            "zgs_getStatus": lambda p: self.status(),
            "zgs_uploadSegment": lambda p: self._upload([parse_params(SegmentParams, p).segment], None),
            "zgs_uploadSegmentByTxSeq": lambda p: self._upload_by_seq(parse_params(SegmentByTxSeqParams, p)),
            "zgs_uploadSegments": lambda p: self._upload(parse_params(SegmentsParams, p).segments, None),
            "zgs_uploadSegmentsByTxSeq": lambda p: self._upload_by_seq(parse_params(SegmentsByTxSeqParams, p)),
            "zgs_downloadSegment": lambda p: self._download(parse_params(RangeByRootParams, p)),
            "zgs_downloadSegmentByTxSeq": lambda p: self._download(parse_params(RangeByTxSeqParams, p)),
            "zgs_downloadSegmentWithProof": lambda p: self._download_with_proof(parse_params(IndexByRootParams, p)),
            "zgs_downloadSegmentWithProofByTxSeq": lambda p: self._download_with_proof(
                parse_params(IndexByTxSeqParams, p)),
            "zgs_checkFileFinalized": lambda p: self._check_finalized(parse_params(CheckFinalizedParams, p)),
            "zgs_getFileInfo": lambda p: self.file_info(self._record(parse_params(FileInfoParams, p))),
            "zgs_getFileInfoByTxSeq": lambda p: self.file_info(self._record(parse_params(TxSeqParams, p))),
            "zgs_getShardConfig": lambda p: node.shard.to_json(),
            "zgs_getSectorProof": lambda p: self._sector_proof(parse_params(SectorProofParams, p)),
            "zgs_getFlowContext": lambda p: self._flow_context(),
            "admin_shutdown": self._shutdown,
            "admin_getSyncStatus": lambda p: self._sync_status(parse_params(TxSeqParams, p).tx_seq),
            "admin_getSyncInfo": lambda p: self._sync_info().to_json(),
            "admin_getFileLocation": lambda p: self._file_location(parse_params(TxSeqParams, p).tx_seq),
            "admin_getPeers": lambda p: {peer["url"]: peer for peer in peers_json(node.peer_sync)},
            "admin_getNetworkInfo": lambda p: NetworkInfo().to_json(),
        }

    # --- the extension hook ----------------------------------------------------------------

    def add_methods(self, methods: Mapping[str, Method]) -> None:
        """Serve ``methods`` too (``admin_*``/``miner_*`` names are local); a name already
        served is a wiring mistake, never a silent override."""
        taken = sorted(set(methods) & set(self.methods))
        if taken:
            raise ValueError(f"JSON-RPC methods already served: {', '.join(taken)}")
        self.methods.update(methods)

    def add_status(self, key: str, part: Callable[[], Any]) -> None:
        """Add ``key: part()`` to every ``zgs_getStatus`` answer."""
        if key in {field.alias for field in NodeStatus.model_fields.values()} or key in self._status_parts:
            raise ValueError(f"zgs_getStatus already has a {key!r} field")
        self._status_parts[key] = part

    # --- results ---------------------------------------------------------------------------

    def node_status(self) -> NodeStatus:
        """The node's own status (``GET /health`` and the base of ``zgs_getStatus``)."""
        node = self.node
        identity = NetworkIdentity(chain_id=node.config.chain_id, flow_address=node.config.flow_address,
                                   p2p_protocol_version=P2P_PROTOCOL_VERSION)
        return NodeStatus(connected_peers=len(node.peer_sync.peers), log_sync_height=max(0, node.sync.state.synced_block),
                          log_sync_block="0x" + "00" * 32, next_tx_seq=node.store.next_seq(),
                          network_identity=identity)

    def status(self) -> dict[str, Any]:
        return {**self.node_status().to_json(), **{key: part() for key, part in self._status_parts.items()}}

    def file_info(self, record: TxRecord | None) -> dict[str, Any] | None:
        """``zgs_getFileInfo``'s answer about ``record`` (None: the file is not known here)."""
        if record is None:
            return None
        entry = record.entry
        tx = Transaction(stream_ids=[], data=[], data_merkle_root="0x" + entry.data_root.hex(),
                         merkle_nodes=[(node.height + 1, "0x" + node.root.hex()) for node in entry.submission.nodes],
                         start_entry_index=entry.start_entry, size=entry.size, seq=entry.seq)
        return FileInfo(tx=tx, finalized=record.finalized, is_cached=self.node.cache.has(entry.data_root, entry.size),
                        uploaded_seg_num=self.node.store.count_segments(entry.seq), pruned=False).to_json()

    # --- methods -------------------------------------------------------------------------

    def _upload_by_seq(self, params: SegmentByTxSeqParams | SegmentsByTxSeqParams) -> None:
        segments = [params.segment] if isinstance(params, SegmentByTxSeqParams) else params.segments
        return self._upload(segments, params.tx_seq)

    def _upload(self, segments: list[SegmentWithProof], tx_seq: int | None) -> None:
        if not segments:
            raise RpcError(INVALID_PARAMS, "no segments")
        for segment in segments:
            try:
                self.node.upload_segment(segment, tx_seq)
            except AlreadyFinalized as exc:  # a typed code: the uploader's work is done
                prefix = "" if len(segments) == 1 else f"segment {segment.index}: "
                raise RpcError(ALREADY_FINALIZED_ERROR_CODE, prefix + str(exc)) from None
            except ZgError as exc:
                if len(segments) == 1:
                    raise
                raise type(exc)(f"segment {segment.index}: {exc.message}", exc.hint) from None
        return None

    def _record(self, params: FileInfoParams | TxSeqParams | RangeByRootParams | RangeByTxSeqParams
                | IndexByRootParams | IndexByTxSeqParams) -> TxRecord | None:
        """The file a method names by ``root`` or by ``txSeq``."""
        if isinstance(params, TxSeqParams | RangeByTxSeqParams | IndexByTxSeqParams):
            return self.node.store.tx(params.tx_seq)
        return self.node.tx_by_root(params.root)

    def _download(self, params: RangeByRootParams | RangeByTxSeqParams) -> str | None:
        record = self._record(params)
        if record is None:
            return None
        try:
            return base64.b64encode(self.node.chunks(record, params.start_index, params.end_index)).decode()
        except DataUnavailable:
            return None

    def _download_with_proof(self, params: IndexByRootParams | IndexByTxSeqParams) -> dict[str, Any] | None:
        record = self._record(params)
        if record is None:
            return None
        try:
            return self.node.segment_with_proof(record, params.index).to_json()
        except DataUnavailable:
            return None

    def _check_finalized(self, params: CheckFinalizedParams) -> bool | None:
        key = params.tx_seq_or_root
        record = self.node.tx_by_root(key) if isinstance(key, bytes) else self.node.store.tx(key)
        return None if record is None else record.finalized

    def _sector_proof(self, params: SectorProofParams) -> dict[str, Any]:
        return self.node.sector_proof(params.sector_index, params.flow_root).to_json()

    def _flow_context(self) -> list[Any]:
        root, length = self.node.flow_context()
        return ["0x" + root.hex(), length]

    def _shutdown(self, params: Params) -> None:
        if self.shutdown is not None:
            self.shutdown()
        return None

    def _sync_status(self, seq: int) -> str:
        record = self.node.store.tx(seq)
        if record is None:
            raise FileNotFound(f"no file with tx seq {seq} on this node")
        if record.finalized:
            return "Completed"
        return file_status(self.node.peer_sync, seq) or "Idle"

    def _sync_info(self) -> SyncInfo:
        state = self.node.sync.state
        return SyncInfo(head=state.head, synced_block=state.synced_block, errors=state.errors,
                        last_error=state.last_error, next_tx_seq=self.node.store.next_seq(),
                        shard_config=self.node.shard.to_json(), file_sync=sync_info(self.node.peer_sync))

    def _file_location(self, seq: int) -> list[dict[str, Any]] | None:
        record = self.node.store.tx(seq)
        if record is None or not record.finalized:
            return None
        # This node's address as it tells others (its announced URL), never an assumed loopback.
        ip = urlsplit(self.node.config.sync.self_url).hostname or ""
        return [FileLocation(ip=ip, shard_config=self.node.shard.to_json()).to_json()]
