"""The storage node's JSON-RPC edge as pydantic models: each method's positional params (checked
once, at the edge, with 0G's names and the node's error messages) and the result shapes of
0G's node (field names and order byte-for-byte what 0G's TS SDK reads)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from zgos.runtime.jsonrpc import INVALID_PARAMS, RpcError, validate_int
from zgos.storage.spec.merkle import InvalidProof, parse_hash
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof


def to_wire_name(name: str) -> str:
    """0G's camelCase name of a field (``p2p_protocol_version`` -> ``p2pProtocolVersion``)."""
    return to_camel(name).replace("p2P", "p2p")


# --- params --------------------------------------------------------------------------------


def _parse_hash(value: Any, name: str) -> bytes:
    try:
        return parse_hash(value, name)
    except InvalidProof as exc:
        raise RpcError(INVALID_PARAMS, exc.message) from None


def _hash(name: str) -> BeforeValidator:
    return BeforeValidator(lambda value: _parse_hash(value, name))


def _int(name: str) -> BeforeValidator:
    return BeforeValidator(lambda value: validate_int(value, name))


def _segment(value: Any) -> SegmentWithProof:
    try:
        return SegmentWithProof.from_json(value)
    except InvalidSegment as exc:
        raise RpcError(INVALID_PARAMS, exc.message) from None


def _segments(value: Any) -> list[SegmentWithProof]:
    if not isinstance(value, list):
        raise RpcError(INVALID_PARAMS, "segments must be an array")
    return [_segment(item) for item in value]


def _optional_bool(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise RpcError(INVALID_PARAMS, "needAvailable must be a boolean")
    return value


def _seq_or_root(value: Any) -> int | bytes:
    if isinstance(value, str):
        return _parse_hash(value, "root")
    return validate_int(value, "txSeq")


TxSeq = Annotated[int, _int("txSeq")]
Root = Annotated[bytes, _hash("root")]
Segment = Annotated[SegmentWithProof, BeforeValidator(_segment)]
Segments = Annotated[list[SegmentWithProof], BeforeValidator(_segments)]


class RpcParams(BaseModel):
    """Positional params, in field order; a missing required one is an invalid-params error
    naming it (``missing parameter 1 (txSeq)``); params past the last field are ignored."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, alias_generator=to_wire_name)


class SegmentParams(RpcParams):
    segment: Segment


class SegmentByTxSeqParams(RpcParams):
    segment: Segment
    tx_seq: TxSeq


class SegmentsParams(RpcParams):
    segments: Segments


class SegmentsByTxSeqParams(RpcParams):
    segments: Segments
    tx_seq: TxSeq


class TxSeqParams(RpcParams):
    tx_seq: TxSeq


class RangeByRootParams(RpcParams):
    root: Root
    start_index: Annotated[int, _int("startIndex")]
    end_index: Annotated[int, _int("endIndex")]


class RangeByTxSeqParams(RpcParams):
    tx_seq: TxSeq
    start_index: Annotated[int, _int("startIndex")]
    end_index: Annotated[int, _int("endIndex")]


class IndexByRootParams(RpcParams):
    root: Root
    index: Annotated[int, _int("index")]


class IndexByTxSeqParams(RpcParams):
    tx_seq: TxSeq
    index: Annotated[int, _int("index")]


class CheckFinalizedParams(RpcParams):
    tx_seq_or_root: Annotated[int | bytes, BeforeValidator(_seq_or_root)]


class FileInfoParams(RpcParams):
    root: Root
    need_available: Annotated[bool | None, BeforeValidator(_optional_bool)] = None


def _address(value: object) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise ValueError("must be a 0x-prefixed 20-byte address")
    bytes.fromhex(value[2:])
    return value


class CustodyParams(RpcParams):
    tx_seq: Annotated[int, _int("txSeq")]
    registry: Annotated[str, BeforeValidator(_address)]


class SectorProofParams(RpcParams):
    sector_index: Annotated[int, _int("sectorIndex")]
    flow_root: Annotated[bytes | None, BeforeValidator(lambda v: None if v is None else _parse_hash(v, "flowRoot"))] = None


# --- results -------------------------------------------------------------------------------


class RpcResult(BaseModel):
    """A result shape: snake_case here, 0G's camelCase on the wire (``to_json``)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_wire_name, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class ProtocolVersion(RpcResult):
    major: int
    minor: int
    build: int


class NetworkIdentity(RpcResult):
    chain_id: int
    flow_address: str
    p2p_protocol_version: ProtocolVersion


class NodeStatus(RpcResult):
    """``zgs_getStatus`` (its node part; extensions such as the miner add fields)."""

    connected_peers: int
    log_sync_height: int
    log_sync_block: str
    next_tx_seq: int
    network_identity: NetworkIdentity


class Transaction(RpcResult):
    """0G's ``Transaction`` of a file: ``merkleNodes`` are ``[height + 1, root]`` pairs."""

    stream_ids: list[Any]
    data: list[Any]
    data_merkle_root: str
    merkle_nodes: list[tuple[int, str]]
    start_entry_index: int
    size: int
    seq: int


class FileInfo(RpcResult):
    """``zgs_getFileInfo`` / ``zgs_getFileInfoByTxSeq``."""

    tx: Transaction
    finalized: bool
    is_cached: bool
    uploaded_seg_num: int
    pruned: bool


class SyncInfo(RpcResult):
    """``admin_getSyncInfo``: log sync and the peer sync's status."""

    head: int
    synced_block: int
    errors: int
    last_error: str
    next_tx_seq: int
    shard_config: dict[str, int]
    file_sync: dict[str, Any]


class FileLocation(RpcResult):
    """One item of ``admin_getFileLocation``."""

    ip: str
    shard_config: dict[str, int]


class NetworkInfo(RpcResult):
    """``admin_getNetworkInfo`` (no libp2p network here: an empty one)."""

    peer_id: str = ""
    listen_addr: list[str] = []
    total_peers: int = 0
    connected_peers: int = 0
