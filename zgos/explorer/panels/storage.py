"""The storage panel, ``GET /api/storage``: every storage node announced in the ``NodeRegistry``
with its live status (``zgs_getStatus``: log sync height, next tx, peers, and its miner's hash
rate and answers), the Flow's size and the reward pool's totals (fees deposited, paid to
miners).

Nodes are asked in parallel through the outbound guard (a short total deadline, a size cap, the
data dir's address policy); an unreachable node is listed with the reason instead of failing
the panel. What a node reports is shown as it reported it when it is a JSON scalar; a report
of another shape lists the node with that reason.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry, RegisteredNode
from zgos.explorer.deps import Deps
from zgos.explorer.models import ApiModel
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import JsonRpcFailure, JsonRpcUnreachable
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import FlowContract, Reward
from zgos.storage.nodeclient import request_status

NODE_TIMEOUT_S = 2.0  # total, per node: the URLs are announced by strangers
MAX_STATUS_BYTES = 64 * 1024
MAX_PROBES = 16
# What a node reports is passed on as sent, if it is a JSON scalar (never a nested structure).
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None

router = APIRouter(prefix="/api")


class MinerSummary(ApiModel):
    """The node's miner as its ``zgs_getStatus`` reports it."""

    running: Scalar = None
    hash_rate: Scalar = None
    answers_submitted: Scalar = None
    answers_accepted: Scalar = None
    total_reward: Scalar = None
    beneficiary: Scalar = None


class NodeReport(ApiModel):
    """What a node says of itself in ``zgs_getStatus``: the keys the panel shows, each a JSON
    scalar passed on as sent (a node that is not mining reports no miner object)."""

    log_sync_height: Scalar = None
    next_tx_seq: Scalar = None
    connected_peers: Scalar = None
    miner: MinerSummary | None = None

    @field_validator("miner", mode="before")
    @classmethod
    def _miner_object(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None


class StorageNodeRow(ApiModel):
    """An announced node and what it says of itself (``error`` when it could not be asked)."""

    url: str
    operator: str
    shard: str  # "shardId/numShard" as announced
    error: str | None
    log_sync_height: Scalar
    next_tx_seq: Scalar
    peers: Scalar
    miner: MinerSummary | None

    @classmethod
    def of(cls, node: RegisteredNode, answer: NodeReport | str) -> StorageNodeRow:
        report = answer if isinstance(answer, NodeReport) else NodeReport()
        return cls(url=node.url, operator=node.operator, shard=f"{node.shard_id}/{node.num_shard}",
                   error=answer if isinstance(answer, str) else None, log_sync_height=report.log_sync_height,
                   next_tx_seq=report.next_tx_seq, peers=report.connected_peers, miner=report.miner)


class FlowSummary(ApiModel):
    submissions: int
    sectors: int


class RewardTotals(ApiModel):
    deposited: int  # wei
    paid: int  # wei


class StoragePanel(ApiModel):
    nodes: list[StorageNodeRow]
    flow: FlowSummary
    rewards: RewardTotals


def node_status(http: httpx.Client, url: str) -> NodeReport | str:
    """A storage node's ``zgs_getStatus`` report, or why there is none."""
    try:
        result = request_status(http, url)
    except JsonRpcUnreachable as exc:
        return f"unreachable ({exc})"
    except JsonRpcFailure:
        result = None
    if not isinstance(result, dict):
        return "not a storage node (no zgs_getStatus result)"
    try:
        return NodeReport.model_validate(result)
    except ValidationError:
        return "not a storage node (zgs_getStatus result of another shape)"


def node_rows(data_dir: DataDir, nodes: list[RegisteredNode]) -> list[StorageNodeRow]:
    """Each node's row, all nodes asked at once."""
    with OutboundClient(data_dir.outbound_policy(), deadline_s=NODE_TIMEOUT_S,
                        max_response_bytes=MAX_STATUS_BYTES) as http, \
            ThreadPoolExecutor(max(1, min(MAX_PROBES, len(nodes)))) as pool:
        statuses = list(pool.map(lambda n: node_status(http, n.url), nodes))
    return [StorageNodeRow.of(node, status) for node, status in zip(nodes, statuses, strict=True)]


def reward_totals(chain: Chain, deployment: Deployment) -> RewardTotals:
    reward = Reward(chain, deployment.address("Reward"))
    return RewardTotals(deposited=reward.total_deposited(), paid=reward.total_distributed())


@router.get("/storage")
def storage(deps: Deps) -> StoragePanel:
    chain, deployment = deps.chain(), deps.deployment()
    nodes = NodeRegistry(chain, deployment.address("NodeRegistry")).usable_nodes(NodeKind.STORAGE)
    flow = FlowContract(chain, deployment.address("Flow"))
    return StoragePanel(
        nodes=node_rows(deps.data_dir, nodes),
        flow=FlowSummary(submissions=flow.num_submissions(), sectors=flow.flow_length()),
        rewards=reward_totals(chain, deployment),
    )
