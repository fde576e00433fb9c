"""``IndexerClient``: ask an indexer which storage nodes to use (the client side of §5.2-5.4)."""

from __future__ import annotations

from typing import Any

import httpx

from zgos.core.errors import ZgError
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)

TIMEOUT_S = 30.0


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

    def sharded_nodes(self) -> list[dict[str, Any]]:
        answer = self.rpc("indexer_getShardedNodes")
        return list(answer["trusted"]) + list(answer["discovered"])

    def upload_nodes(self, replicas: int) -> list[str]:
        """URLs of nodes covering every shard ``replicas`` times."""
        return [node["url"] for node in self.rpc("indexer_selectNodes", replicas)]

    def file_locations(self, root: bytes) -> list[str]:
        """URLs of nodes holding the file finalized."""
        return [node["url"] for node in self.rpc("indexer_getFileLocations", "0x" + root.hex())]
