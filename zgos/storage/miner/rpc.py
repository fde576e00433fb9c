"""The miner's JSON-RPC methods, registered through the node RPC's extension hook:
``miner_start``/``miner_stop``/``miner_getStatus`` (local methods, like ``admin_*``: loopback
with the install token) and the miner's part of ``zgs_getStatus`` (its ``miner`` field)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from zgos.runtime.jsonrpc import Method, Params
from zgos.storage.miner.loop import Miner

MINER_STATUS_KEY = "miner"


class RpcExtensions(Protocol):
    """What a node's RPC offers a part that serves more (``NodeRpc``)."""

    def add_methods(self, methods: Mapping[str, Method]) -> None: ...
    def add_status(self, key: str, part: Callable[[], Any]) -> None: ...


def miner_methods(miner: Miner) -> dict[str, Method]:
    def start(params: Params) -> bool:
        miner.start()
        return True

    def stop(params: Params) -> bool:
        miner.pause()
        return True

    return {"miner_start": start, "miner_stop": stop, "miner_getStatus": lambda params: miner.status()}


def register_miner_rpc(rpc: RpcExtensions, miner: Miner) -> None:
    """Serve the miner's methods and its status in ``zgs_getStatus``."""
    rpc.add_methods(miner_methods(miner))
    rpc.add_status(MINER_STATUS_KEY, miner.status)
