"""``IndexerClient``: ask an indexer which storage nodes to use (the client side of §5.2-5.4)."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from zgos.core.errors import ZgError
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)

TIMEOUT_S = 30.0
Answer = TypeVar("Answer")


class IndexedNode(BaseModel):
    """A node in an indexer's answer as the client reads it: its URL (0G's other fields kept
    as they came)."""

    model_config = ConfigDict(extra="allow")

    url: str


class IndexedNodes(BaseModel):
    """``indexer_getShardedNodes``'s answer."""

    trusted: list[IndexedNode]
    discovered: list[IndexedNode]


NODE_LIST = TypeAdapter(list[IndexedNode])
SHARDED_NODES = TypeAdapter(IndexedNodes)


class IndexerError(ZgError):
    """The indexer could not answer, or answered with an error."""


class IndexerClient:
    def __init__(self, url: str, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(timeout=TIMEOUT_S)

    def __enter__(self) -> IndexerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        try:
            return call_jsonrpc(self.http, self.url, method, params)
        except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
            raise IndexerError(f"indexer {self.url} did not answer {method} ({exc})",
                               "is `zg storage indexer` running? see `zg devnet status`") from None
        except JsonRpcErrorAnswer as exc:
            raise IndexerError(f"indexer: {exc}") from None

    def rpc_as(self, shape: TypeAdapter[Answer], method: str, *params: Any) -> Answer:
        """``method``'s result validated as ``shape``; a result of another shape is an
        ``IndexerError``, never a ``KeyError`` deep in a caller."""
        answer = self.rpc(method, *params)
        try:
            return shape.validate_python(answer)
        except ValidationError as exc:
            raise IndexerError(f"indexer {self.url} answered {method} with a malformed result "
                               f"({exc.error_count()} error(s))") from None

    def sharded_nodes(self) -> list[dict[str, Any]]:
        answer = self.rpc_as(SHARDED_NODES, "indexer_getShardedNodes")
        return [node.model_dump() for node in answer.trusted + answer.discovered]

    def upload_nodes(self, replicas: int) -> list[str]:
        """URLs of nodes covering every shard ``replicas`` times."""
        return [node.url for node in self.rpc_as(NODE_LIST, "indexer_selectNodes", replicas)]

    def file_locations(self, root: bytes) -> list[str]:
        """URLs of nodes holding the file finalized."""
        return [node.url for node in self.rpc_as(NODE_LIST, "indexer_getFileLocations", "0x" + root.hex())]
