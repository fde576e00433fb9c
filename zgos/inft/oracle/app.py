"""The INFT oracle service (``zg inft oracle``): ``inft_*`` JSON-RPC behind the guarded edge.

* ``inft_oracleInfo()``: this oracle's address, public key (x || y), the contracts it signs
  for, and what it is: a trusted signer, not a TEE.
* ``inft_reencrypt(request)``: lead the re-encryption of one data item (``work.OracleWork``)
  and return it with ``threshold`` oracle signatures.
* ``inft_endorse(endorsement)``: check another oracle's re-encryption and sign it.

At start the oracle announces its URL in the ``NodeRegistry`` (kind ``INFT_ORACLE``) from its
own account, so owners and peers find it; the verifier's oracle set says whether it counts.
Re-encryptions run ``MAX_CONCURRENT`` at a time, each within ``REENCRYPT_DEADLINE_S``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.registry import NodeKind, NodeRegistry, register_or_update
from zgos.core.errors import ZgError
from zgos.inft.contracts import InftContracts
from zgos.inft.oracle.messages import Endorsement, ReencryptRequest, hex_of
from zgos.inft.oracle.work import OracleWork
from zgos.inft.oracles import OracleEndpoint, OracleError, find_oracles
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.edge import EdgePolicy, Route, plain_error_body
from zgos.runtime.jsonrpc import (
    SERVER_ERROR,
    JsonRpcServer,
    Params,
    RpcError,
    get_param,
    jsonrpc_app,
)
from zgos.runtime.netutil import JsonRpcFailure, call_jsonrpc
from zgos.runtime.outbound import OutboundClient
from zgos.runtime.ports import INFT_ORACLE_PORT
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.storage.client import StorageClient

log = logging.getLogger("zgos.inft.oracle")

MAX_BODY_BYTES = 64 * 1024
REENCRYPT_DEADLINE_S = 600.0
ENDORSE_TIMEOUT_S = 300.0
MAX_CONCURRENT = 2
MAX_INFLIGHT = 16
DEFAULT_MAX_DATA_BYTES = 1024 * 1024 * 1024
WHAT_IT_IS = "zgos INFT oracle: a trusted signer, not a TEE; it sees the plaintext it re-encrypts"


@dataclass(frozen=True)
class OracleConfig:
    state_dir: Path
    nft: str
    verifier: str
    registry: str
    flow: str
    storage_nodes: tuple[str, ...]
    outbound: AddressPolicy
    host: str = "127.0.0.1"
    port: int = INFT_ORACLE_PORT
    public_url: str | None = None  # what it announces; default http://host:port
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES


class OracleService:
    def __init__(self, config: OracleConfig, account: LocalAccount, chain: Chain) -> None:
        """``chain``: the connection it reads and transacts through, with the confirmations of
        the network it serves (``zg inft oracle`` passes the CLI's: ``network.json``'s)."""
        self.config = config
        self.account = account
        self.contracts = InftContracts(chain, config.nft, config.verifier)
        self.registry = NodeRegistry(chain, config.registry)
        self.storage = StorageClient(list(config.storage_nodes), chain, config.flow, account, policy=config.outbound)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.work = OracleWork(account, self.contracts, self.storage, config.state_dir, config.max_data_bytes)
        self.http = OutboundClient(config.outbound, deadline_s=ENDORSE_TIMEOUT_S)
        rpc = JsonRpcServer({"inft_oracleInfo": lambda params: self.info(),
                             "inft_reencrypt": self._guarded(self.reencrypt),
                             "inft_endorse": self._guarded(self.endorse)})
        app = jsonrpc_app(rpc, anyio.CapacityLimiter(MAX_CONCURRENT), [])
        policy = EdgePolicy(routes=(Route("/", max_body_bytes=MAX_BODY_BYTES, deadline_s=REENCRYPT_DEADLINE_S),),
                            max_inflight=MAX_INFLIGHT, error_body=plain_error_body)
        self.server = EdgeServer(app, bind_listener(config.host, config.port), policy)

    @property
    def url(self) -> str:
        return self.config.public_url or self.server.url

    def info(self) -> dict[str, Any]:
        return {"address": self.account.address, "pubkey": hex_of(self.work.pubkey), "nft": self.contracts.nft.address,
                "verifier": self.contracts.verifier.address, "chainId": self.contracts.chain.chain_id, "kind": WHAT_IT_IS}

    def reencrypt(self, params: Params) -> Any:
        request = ReencryptRequest.from_json(get_param(params, 0, "request"))
        peers, threshold = find_oracles(self.contracts, self.registry, self.http)
        return self.work.reencrypt(request, peers, threshold, self._endorse_at).to_json()

    def endorse(self, params: Params) -> Any:
        return {"signature": hex_of(self.work.endorse(Endorsement.from_json(get_param(params, 0, "endorsement"))))}

    def _endorse_at(self, peer: OracleEndpoint, endorsement: Endorsement) -> bytes:
        try:
            answer = call_jsonrpc(self.http, peer.url, "inft_endorse", [endorsement.to_json()], timeout_s=ENDORSE_TIMEOUT_S)
            return bytes.fromhex(str(answer["signature"]).removeprefix("0x"))
        except (JsonRpcFailure, KeyError, TypeError, ValueError) as exc:
            raise OracleError(f"{peer.url}: {exc}") from None

    @staticmethod
    def _guarded(method: Callable[[Params], Any]) -> Callable[[Params], Any]:
        """Refusals and failures as JSON-RPC errors with their message (never a traceback)."""
        def call(params: Params) -> Any:
            try:
                return method(params)
            except ZgError as exc:
                log.warning("refused: %s", exc)
                raise RpcError(SERVER_ERROR, str(exc)) from None
        return call

    def announce(self) -> None:
        """Announce this oracle's URL in the NodeRegistry (no transaction if already there)."""
        def registered() -> str | None:
            mine = [n.url for n in self.registry.nodes(NodeKind.INFT_ORACLE) if n.operator == self.account.address]
            return mine[0] if mine else None
        register_or_update(registered, self.url,
                           lambda url: self.registry.announce(self.account, NodeKind.INFT_ORACLE, url))

    def run(self, started: Callable[[], None] = lambda: None) -> None:
        self.announce()
        started()
        try:
            self.server.serve()
        finally:
            self.close()

    def start(self) -> None:
        self.announce()
        self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.storage.close()
        self.http.close()
