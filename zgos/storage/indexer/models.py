"""The indexer's wire shapes, declared once: the params of 0G's ``indexer_*`` JSON-RPC methods and
the results they and the REST gateway answer with (0G's ``ShardedNode``, ``{trusted,
discovered}``, the file info and ``/node/status``).

Params arrive as a positional array and are validated here, once, into a model
(``zgos.runtime.jsonrpc.parse_params``); a bad or missing one is ``RpcError(INVALID_PARAMS)`` with the message the
indexer has always given. Results are built from the core's types (``of``) and dumped with
0G's camelCase keys, in the order 0G's TS SDK reads them.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, JsonValue, PlainValidator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from zgos.core.errors import ZgError
from zgos.runtime.jsonrpc import RpcError, validate_int
from zgos.storage.discovery import SkippedNode
from zgos.storage.ecclient import ErasureRecord
from zgos.storage.indexer.directory import ShardedNode, Snapshot
from zgos.storage.spec.merkle import InvalidProof, parse_hash

MAX_REPLICAS = 64


class BadRequest(ZgError):
    """The request itself is wrong (bad root, bad replica count)."""


# --- params ----------------------------------------------------------------------------------


def parse_root(value: Any) -> bytes:
    """A file root given as ``0x`` + 64 hex digits; ``BadRequest`` saying so otherwise."""
    try:
        return parse_hash(value, "root")
    except InvalidProof as exc:
        raise BadRequest(f"{exc.message} (a root is 0x followed by 64 hex digits)") from None


def _root_param(value: Any) -> bytes:
    try:
        return parse_root(value)
    except BadRequest as exc:
        raise PydanticCustomError("invalid_param", "{message}", {"message": exc.message}) from None


def _replicas_param(value: Any) -> int:
    try:
        return validate_int(value, "replicas", 1, MAX_REPLICAS)
    except RpcError as exc:
        raise PydanticCustomError("invalid_param", "{message}", {"message": exc.message}) from None


Root = Annotated[bytes, PlainValidator(_root_param)]
Replicas = Annotated[int, PlainValidator(_replicas_param)]


class RootParams(BaseModel):
    """``[root]``: ``indexer_getFileLocations``, ``indexer_getFileInfo``."""

    root: Root


class ReplicasParams(BaseModel):
    """``[replicas?]``: ``indexer_selectNodes`` (one replica when left out)."""

    replicas: Replicas = 1


# --- results ---------------------------------------------------------------------------------


class Wire(BaseModel):
    """A result: frozen, camelCase on the wire."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class ShardConfigJson(Wire):
    shard_id: int
    num_shard: int


class ShardedNodeJson(Wire):
    """0G's ``ShardedNode``: ``{url, config{shardId, numShard}, latency (ms), since (unix s)}``."""

    url: str
    config: ShardConfigJson
    latency: int
    since: int

    @classmethod
    def of(cls, node: ShardedNode) -> Self:
        config = ShardConfigJson(shard_id=node.config.shard_id, num_shard=node.config.num_shard)
        return cls(url=node.url, config=config, latency=node.latency_ms, since=node.since)


def sharded_nodes_json(nodes: list[ShardedNode]) -> list[dict[str, Any]]:
    return [ShardedNodeJson.of(node).to_json() for node in nodes]


class ShardedNodesResult(Wire):
    """``indexer_getShardedNodes``: zgos has no separate discovery node, so ``discovered`` is
    always empty."""

    trusted: list[ShardedNodeJson]
    discovered: list[ShardedNodeJson]

    @classmethod
    def of(cls, trusted: list[ShardedNode]) -> Self:
        return cls(trusted=[ShardedNodeJson.of(node) for node in trusted], discovered=[])


class ErasureJson(Wire):
    """A file's erasure record: its code, parity root, shard groups and uploader."""

    k: int
    m: int
    parity_root: str
    groups: list[str]
    uploader: str

    @classmethod
    def of(cls, record: ErasureRecord) -> Self:
        return cls(k=record.params.k, m=record.params.m, parity_root="0x" + record.parity_root.hex(),
                   groups=[str(group) for group in record.groups], uploader=record.uploader)


class FileInfoResult(Wire):
    """``indexer_getFileInfo`` and ``GET /file/info/{root}``: the tx as the first finalized
    node (else the first node) describes it, and which nodes hold the file."""

    root: str
    tx: JsonValue
    finalized: bool
    locations: list[ShardedNodeJson]
    pending: list[ShardedNodeJson]
    ec: ErasureJson | None


class SkippedNodeJson(Wire):
    url: str
    source: str
    reason: str
    score: int
    failures: int
    retry_in_secs: float

    @classmethod
    def of(cls, node: SkippedNode) -> Self:
        return cls(url=node.url, source=node.source, reason=node.reason, score=node.score,
                   failures=node.failures, retry_in_secs=round(node.retry_in_s, 1))


class NodeStatusResult(Wire):
    """``GET /node/status``: the usable nodes, the skipped ones and why, the snapshot's age."""

    nodes: list[ShardedNodeJson]
    skipped: list[SkippedNodeJson]
    refreshed_at: int
    age_secs: float

    @classmethod
    def of(cls, snapshot: Snapshot, now: float) -> Self:
        return cls(nodes=[ShardedNodeJson.of(n) for n in snapshot.nodes],
                   skipped=[SkippedNodeJson.of(s) for s in snapshot.skipped],
                   refreshed_at=int(snapshot.refreshed_at), age_secs=round(now - snapshot.refreshed_at, 3))
