"""JSON-RPC 2.0 methods of a storage node, in 0G's names and JSON shapes (storage.md §5.1).

``RpcHandler.handle(body, client_host)`` turns any request body into a response body: parse
errors, invalid requests, unknown methods and bad parameters become JSON-RPC error objects
(never an exception or an HTTP 5xx); a ``ZgError`` raised by the node becomes error ``-32000``
with its message (e.g. ``invalid proof: proof is for position 3, not 2``). ``admin_*`` methods
answer only clients on the loopback interface.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
from collections.abc import Callable
from typing import Any

from zgos.core.errors import ZgError
from zgos.storage.merkle import InvalidProof, parse_hash
from zgos.storage.node.node import DataUnavailable, FileNotFound, StorageNode
from zgos.storage.segment import InvalidSegment, SegmentWithProof

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
MAX_BATCH = 1000


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _param(params: list[Any], index: int, name: str, required: bool = True) -> Any:
    if index < len(params):
        return params[index]
    if required:
        raise RpcError(INVALID_PARAMS, f"missing parameter {index} ({name})")
    return None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 64:
        raise RpcError(INVALID_PARAMS, f"{name} must be a non-negative integer")
    return value


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


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RpcHandler:
    def __init__(self, node: StorageNode, shutdown: Callable[[], None] | None = None) -> None:
        self.node = node
        self.shutdown = shutdown
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "zgs_getStatus": lambda p: node.status(),
            "zgs_uploadSegment": lambda p: self._upload([_segment(_param(p, 0, "segment"))], None),
            "zgs_uploadSegmentByTxSeq": lambda p: self._upload(
                [_segment(_param(p, 0, "segment"))], _int(_param(p, 1, "txSeq"), "txSeq")),
            "zgs_uploadSegments": lambda p: self._upload(_segments(_param(p, 0, "segments")), None),
            "zgs_uploadSegmentsByTxSeq": lambda p: self._upload(
                _segments(_param(p, 0, "segments")), _int(_param(p, 1, "txSeq"), "txSeq")),
            "zgs_downloadSegment": lambda p: self._download(
                self._by_root(p), _int(_param(p, 1, "startIndex"), "startIndex"), _int(_param(p, 2, "endIndex"), "endIndex")),
            "zgs_downloadSegmentByTxSeq": lambda p: self._download(
                self._by_seq(p), _int(_param(p, 1, "startIndex"), "startIndex"), _int(_param(p, 2, "endIndex"), "endIndex")),
            "zgs_downloadSegmentWithProof": lambda p: self._download_with_proof(
                self._by_root(p), _int(_param(p, 1, "index"), "index")),
            "zgs_downloadSegmentWithProofByTxSeq": lambda p: self._download_with_proof(
                self._by_seq(p), _int(_param(p, 1, "index"), "index")),
            "zgs_checkFileFinalized": self._check_finalized,
            "zgs_getFileInfo": self._file_info,
            "zgs_getFileInfoByTxSeq": lambda p: self._info_or_none(self._by_seq(p)),
            "zgs_getShardConfig": lambda p: node.shard.to_json(),
            "zgs_getSectorProof": self._sector_proof,
            "zgs_getFlowContext": self._flow_context,
            "admin_shutdown": self._shutdown,
            "admin_getSyncStatus": lambda p: self._sync_status(_int(_param(p, 0, "txSeq"), "txSeq")),
            "admin_getSyncInfo": lambda p: self._sync_info(),
            "admin_getFileLocation": self._file_location,
            "admin_getPeers": lambda p: {peer["url"]: peer for peer in node.peer_sync.info()["peers"]},
            "admin_getNetworkInfo": lambda p: {"peerId": "", "listenAddr": [], "totalPeers": 0, "connectedPeers": 0},
        }

    # --- dispatch ------------------------------------------------------------------------

    def handle(self, body: bytes, client_host: str) -> bytes | None:
        """Answer a JSON-RPC request body (single or batch); None for notifications only."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._encode(_error(None, PARSE_ERROR, "parse error: body is not valid JSON"))
        if isinstance(request, list):
            if not request:
                return self._encode(_error(None, INVALID_REQUEST, "empty batch"))
            if len(request) > MAX_BATCH:
                return self._encode(_error(None, INVALID_REQUEST, f"batch larger than {MAX_BATCH}"))
            answers = [a for item in request if (a := self._one(item, client_host)) is not None]
            return self._encode(answers) if answers else None
        answer = self._one(request, client_host)
        return None if answer is None else self._encode(answer)

    @staticmethod
    def _encode(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _one(self, request: Any, client_host: str) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "request must be an object")
        request_id = request.get("id")
        if not isinstance(request_id, str | int | float | type(None)) or isinstance(request_id, bool):
            return _error(None, INVALID_REQUEST, "id must be a string, number or null")
        method = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(request_id, INVALID_REQUEST, 'request needs "jsonrpc": "2.0" and a string "method"')
        params = request.get("params", [])
        if isinstance(params, dict):
            params = list(params.values())
        if not isinstance(params, list):
            return _error(request_id, INVALID_PARAMS, "params must be an array")
        notification = "id" not in request
        try:
            handler = self.methods.get(method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")
            if method.startswith(("admin_", "miner_")) and not _is_loopback(client_host):
                raise RpcError(METHOD_NOT_FOUND, f"{method} is only served to localhost")
            result = handler(params)
        except RpcError as exc:
            return None if notification else _error(request_id, exc.code, exc.message)
        except ZgError as exc:
            return None if notification else _error(request_id, SERVER_ERROR, str(exc))
        except Exception:
            log.exception("internal error in %s", method)
            return None if notification else _error(request_id, INTERNAL_ERROR, f"internal error in {method}")
        return None if notification else {"jsonrpc": "2.0", "id": request_id, "result": result}

    # --- methods -------------------------------------------------------------------------

    def _upload(self, segments: list[SegmentWithProof], tx_seq: int | None) -> None:
        if not segments:
            raise RpcError(INVALID_PARAMS, "no segments")
        for segment in segments:
            try:
                self.node.upload_segment(segment, tx_seq)
            except ZgError as exc:
                if len(segments) == 1:
                    raise
                raise type(exc)(f"segment {segment.index}: {exc.message}", exc.hint) from None
        return None

    def _by_seq(self, params: list[Any]) -> Any:
        seq = _int(_param(params, 0, "txSeq"), "txSeq")
        return self.node.store.tx(seq)

    def _by_root(self, params: list[Any]) -> Any:
        return self.node.tx_by_root(_hash(_param(params, 0, "root"), "root"))

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
        key = _param(params, 0, "txSeqOrRoot")
        record = self.node.tx_by_root(_hash(key, "root")) if isinstance(key, str) else self.node.store.tx(_int(key, "txSeq"))
        return None if record is None else record.finalized

    def _info_or_none(self, record: Any) -> dict[str, Any] | None:
        return None if record is None else self.node.file_info(record)

    def _file_info(self, params: list[Any]) -> dict[str, Any] | None:
        root = _hash(_param(params, 0, "root"), "root")
        need_available = _param(params, 1, "needAvailable", required=False)
        if need_available is not None and not isinstance(need_available, bool):
            raise RpcError(INVALID_PARAMS, "needAvailable must be a boolean")
        return self._info_or_none(self.node.tx_by_root(root))

    def _sector_proof(self, params: list[Any]) -> dict[str, Any]:
        sector = _int(_param(params, 0, "sectorIndex"), "sectorIndex")
        flow_root = _param(params, 1, "flowRoot", required=False)
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
        record = self.node.store.tx(_int(_param(params, 0, "txSeq"), "txSeq"))
        if record is None or not record.finalized:
            return None
        return [{"ip": "127.0.0.1", "shardConfig": self.node.shard.to_json()}]


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
