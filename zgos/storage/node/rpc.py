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
from collections.abc import Callable
from typing import Any

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.jsonrpc import (
    INVALID_PARAMS,
    MAX_BATCH_CALLS,
    MAX_RESPONSE_BYTES,
    Call,
    JsonRpcServer,
    Method,
    RpcError,
    get_param,
    validate_int,
)
from zgos.runtime.ratelimit import ClientRateLimiter
from zgos.storage.node.node import AlreadyFinalized, DataUnavailable, FileNotFound, StorageNode
from zgos.storage.spec.merkle import InvalidProof, parse_hash
from zgos.storage.spec.segment import ALREADY_FINALIZED_ERROR_CODE, InvalidSegment, SegmentWithProof

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

def _hash(value: Any, name: str) -> bytes:
    try:
        return parse_hash(value, name)
    except InvalidProof as exc:
        raise RpcError(INVALID_PARAMS, exc.message) from None


def _segment(value: Any) -> SegmentWithProof:
    try:
        return SegmentWithProof.from_json(value)
    except InvalidSegment as exc:
        raise RpcError(INVALID_PARAMS, exc.message) from None


def _segments(value: Any) -> list[SegmentWithProof]:
    if not isinstance(value, list):
        raise RpcError(INVALID_PARAMS, "segments must be an array")
    return [_segment(item) for item in value]


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
    """The storage node's method table (0G's names and shapes)."""

    def __init__(self, node: StorageNode, shutdown: Callable[[], None] | None = None) -> None:
        self.node = node
        self.shutdown = shutdown
        self.methods: dict[str, Method] = {
            "zgs_getStatus": lambda p: node.status(),
            "zgs_uploadSegment": lambda p: self._upload([_segment(get_param(p, 0, "segment"))], None),
            "zgs_uploadSegmentByTxSeq": lambda p: self._upload(
                [_segment(get_param(p, 0, "segment"))], validate_int(get_param(p, 1, "txSeq"), "txSeq")),
            "zgs_uploadSegments": lambda p: self._upload(_segments(get_param(p, 0, "segments")), None),
            "zgs_uploadSegmentsByTxSeq": lambda p: self._upload(
                _segments(get_param(p, 0, "segments")), validate_int(get_param(p, 1, "txSeq"), "txSeq")),
            "zgs_downloadSegment": lambda p: self._download(
                self._by_root(p), validate_int(get_param(p, 1, "startIndex"), "startIndex"), validate_int(get_param(p, 2, "endIndex"), "endIndex")),
            "zgs_downloadSegmentByTxSeq": lambda p: self._download(
                self._by_seq(p), validate_int(get_param(p, 1, "startIndex"), "startIndex"), validate_int(get_param(p, 2, "endIndex"), "endIndex")),
            "zgs_downloadSegmentWithProof": lambda p: self._download_with_proof(
                self._by_root(p), validate_int(get_param(p, 1, "index"), "index")),
            "zgs_downloadSegmentWithProofByTxSeq": lambda p: self._download_with_proof(
                self._by_seq(p), validate_int(get_param(p, 1, "index"), "index")),
            "zgs_checkFileFinalized": self._check_finalized,
            "zgs_getFileInfo": self._file_info,
            "zgs_getFileInfoByTxSeq": lambda p: self._info_or_none(self._by_seq(p)),
            "zgs_getShardConfig": lambda p: node.shard.to_json(),
            "zgs_getSectorProof": self._sector_proof,
            "zgs_getFlowContext": self._flow_context,
            "admin_shutdown": self._shutdown,
            "admin_getSyncStatus": lambda p: self._sync_status(validate_int(get_param(p, 0, "txSeq"), "txSeq")),
            "admin_getSyncInfo": lambda p: self._sync_info(),
            "admin_getFileLocation": self._file_location,
            "admin_getPeers": lambda p: {peer["url"]: peer for peer in node.peer_sync.info()["peers"]},
            "admin_getNetworkInfo": lambda p: {"peerId": "", "listenAddr": [], "totalPeers": 0, "connectedPeers": 0},
        }

    # --- methods -------------------------------------------------------------------------

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

    def _by_seq(self, params: list[Any]) -> Any:
        seq = validate_int(get_param(params, 0, "txSeq"), "txSeq")
        return self.node.store.tx(seq)

    def _by_root(self, params: list[Any]) -> Any:
        return self.node.tx_by_root(_hash(get_param(params, 0, "root"), "root"))

    def _download(self, record: Any, start: int, end: int) -> str | None:
        if record is None:
            return None
        try:
            return base64.b64encode(self.node.chunks(record, start, end)).decode()
        except DataUnavailable:
            return None

    def _download_with_proof(self, record: Any, index: int) -> dict[str, Any] | None:
        if record is None:
            return None
        try:
            return self.node.segment_with_proof(record, index).to_json()
        except DataUnavailable:
            return None

    def _check_finalized(self, params: list[Any]) -> bool | None:
        key = get_param(params, 0, "txSeqOrRoot")
        record = self.node.tx_by_root(_hash(key, "root")) if isinstance(key, str) else self.node.store.tx(validate_int(key, "txSeq"))
        return None if record is None else record.finalized

    def _info_or_none(self, record: Any) -> dict[str, Any] | None:
        return None if record is None else self.node.file_info(record)

    def _file_info(self, params: list[Any]) -> dict[str, Any] | None:
        root = _hash(get_param(params, 0, "root"), "root")
        need_available = get_param(params, 1, "needAvailable", required=False)
        if need_available is not None and not isinstance(need_available, bool):
            raise RpcError(INVALID_PARAMS, "needAvailable must be a boolean")
        return self._info_or_none(self.node.tx_by_root(root))

    def _sector_proof(self, params: list[Any]) -> dict[str, Any]:
        sector = validate_int(get_param(params, 0, "sectorIndex"), "sectorIndex")
        flow_root = get_param(params, 1, "flowRoot", required=False)
        root = None if flow_root is None else _hash(flow_root, "flowRoot")
        return self.node.sector_proof(sector, root).to_json()

    def _flow_context(self, params: list[Any]) -> list[Any]:
        root, length = self.node.flow_context()
        return ["0x" + root.hex(), length]

    def _shutdown(self, params: list[Any]) -> None:
        if self.shutdown is not None:
            self.shutdown()
        return None

    def _sync_status(self, seq: int) -> str:
        record = self.node.store.tx(seq)
        if record is None:
            raise FileNotFound(f"no file with tx seq {seq} on this node")
        if record.finalized:
            return "Completed"
        return self.node.peer_sync.file_status(seq) or "Idle"

    def _sync_info(self) -> dict[str, Any]:
        state = self.node.sync.state
        return {"head": state.head, "syncedBlock": state.synced_block, "errors": state.errors,
                "lastError": state.last_error, "nextTxSeq": self.node.store.next_seq(),
                "shardConfig": self.node.shard.to_json(), "fileSync": self.node.peer_sync.info()}

    def _file_location(self, params: list[Any]) -> list[dict[str, Any]] | None:
        record = self.node.store.tx(validate_int(get_param(params, 0, "txSeq"), "txSeq"))
        if record is None or not record.finalized:
            return None
        return [{"ip": "127.0.0.1", "shardConfig": self.node.shard.to_json()}]

