"""What the explorer's panels read: the data dir (deployment), the chain, and a source of the
running services' status (the devnet's, handed in by ``zg explorer serve``, so the explorer never
reaches up into the orchestrator).

``create_app`` keeps one :class:`ExplorerDeps` on the app; each route takes it as the FastAPI
dependency :data:`Deps`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from eth_abi.exceptions import DecodingError
from eth_utils.abi import get_abi_output_types
from fastapi import Depends, HTTPException, Request
from hexbytes import HexBytes
from web3._utils.abi import map_abi_data
from web3._utils.normalizers import BASE_RETURN_NORMALIZERS
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, load_deployment
from zgos.core.errors import ZgError
from zgos.explorer.decode import ContractBook
from zgos.explorer.events import EventIndex
from zgos.runtime.datadir import DataDir

INDEX_FILE = "events.sqlite"
ServiceRows = Callable[[], list[dict[str, Any]]]
T = TypeVar("T")
SAMPLING_TTL_S = 30.0
HEALTH_TTL_S = 10.0
RECENT_KEPT = 256  # answers kept per kind


def no_services() -> list[dict[str, Any]]:
    return []


class ExplorerChain(Chain):
    """The chain client for a long-running reader that makes many view calls, sent raw
    (:meth:`call`). Writes are :class:`Chain`'s."""

    def call(self, fn: ContractFunction, *, sender: str | None = None, plain: bool = False) -> Any:
        """As :meth:`Chain.call`, without web3's search of the ABI and its request formatters
        on every call: the call's data encoded from its own ABI entry, one raw ``eth_call``, the
        outputs decoded and normalized as web3 does. An error (a revert) or an answer that does
        not decode is asked again through :meth:`Chain.call`, which raises as it always does."""
        if sender is not None or plain:
            return super().call(fn, sender=sender, plain=plain)
        request = {"to": fn.address, "data": fn._encode_transaction_data()}
        answer = self.w3.provider.make_request(RPCEndpoint("eth_call"), [request, "latest"])
        if "error" in answer or not isinstance(answer.get("result"), str):
            return super().call(fn)
        types = get_abi_output_types(fn.abi)
        try:
            decoded = self.w3.codec.decode(types, HexBytes(answer["result"]))
        except DecodingError:  # e.g. no contract there: web3 says so
            return super().call(fn)
        outputs = map_abi_data(BASE_RETURN_NORMALIZERS, types, decoded)
        return outputs[0] if len(outputs) == 1 else outputs



class Recent(Generic[T]):
    """Answers the explorer worked out by asking other services (a blob's sampling), kept for
    ``ttl_s`` so that reloading a page, or many visitors, do not multiply the calls; at most
    ``capacity`` of them, the oldest dropped first."""

    def __init__(self, ttl_s: float, capacity: int) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._items: OrderedDict[bytes, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: bytes, make: Callable[[], T]) -> T:
        with self._lock:
            found = self._items.get(key)
            if found is not None and time.monotonic() - found[0] < self.ttl_s:
                return found[1]
        made = make()
        with self._lock:
            self._items[key] = (time.monotonic(), made)
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return made


@dataclass
class ExplorerDeps:
    data_dir: DataDir
    rpc_url: str
    # name, url, pid and state of each service this explorer can see (none outside a devnet)
    services: ServiceRows = no_services
    index: EventIndex = field(init=False)
    # a blob's latest sampling by this explorer (``zgos.explorer.panels.da``)
    samplings: Recent[Any] = field(default_factory=lambda: Recent(SAMPLING_TTL_S, RECENT_KEPT))
    # an erasure-coded file's latest health check (``zgos.explorer.panels.storage``)
    erasure_healths: Recent[Any] = field(default_factory=lambda: Recent(HEALTH_TTL_S, RECENT_KEPT))
    _chain: Chain | None = None
    _book: tuple[Deployment, ContractBook] | None = None

    def chain(self) -> Chain:
        """The chain client; 503 when the RPC URL is unusable."""
        if self._chain is None:
            try:
                self._chain = ExplorerChain(self.rpc_url)
            except ZgError as exc:
                raise HTTPException(503, detail=str(exc)) from None
        return self._chain

    def __post_init__(self) -> None:
        # the contract events the panels list, read incrementally (zgos.explorer.events)
        self.index = EventIndex(self.data_dir.service("explorer") / INDEX_FILE)

    def find_deployment(self) -> Deployment | None:
        """The data dir's deployment on the chain, or None if there is none."""
        try:
            return load_deployment(self.data_dir.deployment, self.chain().chain_id)
        except ZgError:
            return None

    def deployment(self) -> Deployment:
        """The data dir's deployment on the chain; 404 (with the reason) if there is none."""
        chain = self.chain()
        try:
            return load_deployment(self.data_dir.deployment, chain.chain_id)
        except ZgError as exc:
            raise HTTPException(404, detail=str(exc)) from None

    def book(self) -> ContractBook:
        """The deployment's contracts with their ABIs (built once per deployment)."""
        deployment = self.deployment()
        if self._book is None or self._book[0] != deployment:
            self._book = (deployment, ContractBook(self.chain(), deployment))
        return self._book[1]


def explorer_deps(request: Request) -> ExplorerDeps:
    """The app's :class:`ExplorerDeps` (set by ``create_app``)."""
    deps: ExplorerDeps = request.app.state.deps
    return deps


Deps = Annotated[ExplorerDeps, Depends(explorer_deps)]
