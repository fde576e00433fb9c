"""The explorer's network-state endpoints: what the storage and compute networks are doing.

* ``GET /api/storage``: every storage node announced in the ``NodeRegistry`` with its live
  status (``zgs_getStatus``: log sync height, next tx, peers, and its miner's hash rate and
  answers), the Flow's size and the reward pools' totals (fees deposited, paid to miners).
* ``GET /api/compute``: the inference services registered in ``InferenceServing``.

Nodes are asked in parallel through the outbound guard (a short total deadline, a size cap,
the data dir's address policy); an unreachable node is listed with the
reason instead of failing the panel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException

from zgos.chain.deploy import Deployment, load_deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ZgError
from zgos.explorer.deps import ExplorerDeps
from zgos.runtime.netutil import JsonRpcFailure, JsonRpcUnreachable, call_jsonrpc
from zgos.runtime.outbound import OutboundClient

NODE_TIMEOUT_S = 2.0  # total, per node: the URLs are announced by strangers
MAX_STATUS_BYTES = 64 * 1024
MAX_PROBES = 16


def node_status(http: httpx.Client, url: str) -> dict[str, Any]:
    """A storage node's ``zgs_getStatus`` result, or ``{"error": reason}``."""
    try:
        result = call_jsonrpc(http, url, "zgs_getStatus")
    except JsonRpcUnreachable as exc:
        return {"error": f"unreachable ({exc})"}
    except JsonRpcFailure:
        result = None
    if not isinstance(result, dict):
        return {"error": "not a storage node (no zgs_getStatus result)"}
    return result


def networks_router(deps: ExplorerDeps) -> APIRouter:
    router = APIRouter(prefix="/api")

    def deployment() -> Deployment:
        try:
            return load_deployment(deps.data_dir.deployment, deps.chain().chain_id)
        except ZgError as exc:
            raise HTTPException(404, detail=str(exc)) from None

    @router.get("/storage")
    def storage() -> dict[str, Any]:
        chain, found = deps.chain(), deployment()
        nodes = NodeRegistry(chain, found.address("NodeRegistry")).usable_nodes(NodeKind.STORAGE)
        with OutboundClient(deps.data_dir.outbound_policy(), deadline_s=NODE_TIMEOUT_S,
                            max_response_bytes=MAX_STATUS_BYTES) as http, \
                ThreadPoolExecutor(max(1, min(MAX_PROBES, len(nodes)))) as pool:
            statuses = list(pool.map(lambda n: node_status(http, n.url), nodes))
        flow = chain.contract("Flow", found.address("Flow"))
        reward = chain.contract("Reward", found.address("Reward"))
        return {
            "nodes": [
                {"url": n.url, "operator": n.operator, "shard": f"{n.shard_id}/{n.num_shard}",
                 "error": s.get("error"), "logSyncHeight": s.get("logSyncHeight"), "nextTxSeq": s.get("nextTxSeq"),
                 "peers": s.get("connectedPeers"), "miner": _miner(s.get("miner"))}
                for n, s in zip(nodes, statuses, strict=True)
            ],
            "flow": {"submissions": int(chain.call(flow.functions.numSubmissions())),
                     "sectors": int(chain.call(flow.functions.tree())[0])},
            "rewards": {"deposited": int(chain.call(reward.functions.totalDeposited())),
                        "paid": int(chain.call(reward.functions.totalDistributed()))},
        }

    @router.get("/compute")
    def compute() -> list[dict[str, Any]]:
        from zgos.compute.ledger import ComputeContracts

        contracts = ComputeContracts.from_deployment(deps.chain(), deployment())
        return [
            {"provider": s.provider, "url": s.url, "model": s.model, "modelHash": "0x" + s.model_hash.hex(),
             "inputPrice": s.input_price, "outputPrice": s.output_price, "verifiability": s.verifiability}
            for s in contracts.services()
        ]

    return router


def _miner(status: Any) -> dict[str, Any] | None:
    if not isinstance(status, dict):
        return None
    keys = ("running", "hashRate", "answersSubmitted", "answersAccepted", "totalReward", "beneficiary")
    return {key: status.get(key) for key in keys}
