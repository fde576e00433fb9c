"""The storage panel, ``GET /api/storage``: every storage node announced in the ``NodeRegistry``
with its live status (``zgs_getStatus``: log sync height, next tx, peers, and its miner's hash
rate and answers), the Flow's size and the reward pool's totals (fees deposited, paid to
miners). ``GET /api/storage/files`` lists the files submitted to ``Flow`` newest first, a page
at a time (root, size, uploader, tx; from the explorer's event index), and
``GET /api/storage/file/{root}`` one file: its submissions and which nodes hold it
(``zgs_getFileInfo``: finalized, segments uploaded, pruned), ``GET
/api/storage/file/{root}/erasure`` the health of an erasure-coded file stripe by stripe (which
pieces live nodes hold, how many more losses it survives; kept for ``HEALTH_TTL_S``), and
``GET /api/storage/rewards`` the
fees paid into the reward pools and the rewards paid to miners over time (cumulative, by block).

Nodes are asked in parallel through the outbound guard (a short total deadline, a size cap, the
data dir's address policy); an unreachable node is listed with the reason instead of failing
the panel. What a node reports is shown as it reported it when it is a JSON scalar; a report
of another shape lists the node with that reason.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry, RegisteredNode
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.events import IndexedEvent, Series
from zgos.explorer.ids import parse_hash32
from zgos.explorer.models import ApiModel
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import JsonRpcFailure, JsonRpcUnreachable, call_jsonrpc
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import (
    ErasureRegistry,
    FlowContract,
    LogEntry,
    Reward,
    decode_submit_event,
)
from zgos.storage.ecclient import ErasureClient, HealthReport
from zgos.storage.nodeclient import StorageError, request_status

NODE_TIMEOUT_S = 2.0  # total, per node: the URLs are announced by strangers
MAX_STATUS_BYTES = 64 * 1024
MAX_PROBES = 16
MAX_PAGE = 100
MAX_SERIES_POINTS = 200  # a chart's series is thinned to at most this many points
MAX_STRIPES = 512  # stripes listed on a file's page (all are counted)
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


class FileRow(ApiModel):
    """A ``Flow.Submit``: one file appended to the log."""

    index: int  # position in the explorer's list (the ``before`` cursor)
    seq: int
    root: str
    size: int  # bytes
    sectors: int
    uploader: str
    tx: str
    block: int

    @classmethod
    def of(cls, index: int, entry: LogEntry) -> FileRow:
        return cls(index=index, seq=entry.seq, root="0x" + entry.data_root.hex(), size=entry.size,
                   sectors=entry.sectors, uploader=entry.sender, tx=entry.tx_hash, block=entry.block_number)


class FilePage(ApiModel):
    total: int
    files: list[FileRow]


class FileHolder(ApiModel):
    """What one announced node says of the file (``error`` when it could not be asked)."""

    url: str
    shard: str
    error: str | None = None
    known: bool = False
    finalized: Scalar = None
    uploaded_segments: Scalar = None
    pruned: Scalar = None


class FileDetail(ApiModel):
    root: str
    size: int
    uploader: str  # the first submitter (who may register it as a model)
    submissions: list[FileRow]
    nodes: list[FileHolder]


def submitted_root(event: Any) -> bytes:
    """The data root a ``Flow.Submit`` appends (the key files are looked up by)."""
    return decode_submit_event(event).data_root


def flow_series(deps: ExplorerDeps) -> Series:
    """Every ``Flow.Submit`` since the deployment (the event index's series)."""
    deployment = deps.deployment()
    flow = FlowContract(deps.chain(), deployment.address("Flow"))
    return Series(flow.contract, "Submit", deployment.deploy_block, submitted_root)


def file_row(event: IndexedEvent) -> FileRow:
    return FileRow.of(event.position, decode_submit_event(event.as_event_data()))


@router.get("/storage/files")
def files(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
          before: Annotated[int | None, Query(ge=0, description="Files listed below this index (paging).")] = None,
          ) -> FilePage:
    page = deps.index.page(deps.chain(), flow_series(deps), limit, before)
    return FilePage(total=page.total, files=[file_row(e) for e in page.items])


def file_holder(http: httpx.Client, node: RegisteredNode, root: bytes) -> FileHolder:
    shard = f"{node.shard_id}/{node.num_shard}"
    try:
        info = call_jsonrpc(http, node.url, "zgs_getFileInfo", ["0x" + root.hex(), True])
    except JsonRpcFailure as exc:
        return FileHolder(url=node.url, shard=shard, error=f"could not ask ({type(exc).__name__})")
    if not isinstance(info, dict):
        return FileHolder(url=node.url, shard=shard)
    scalars = {k: info.get(k) if isinstance(info.get(k), bool | int) else None
               for k in ("finalized", "uploadedSegNum", "pruned")}
    return FileHolder(url=node.url, shard=shard, known=True, finalized=scalars["finalized"],
                      uploaded_segments=scalars["uploadedSegNum"], pruned=scalars["pruned"])


@router.get("/storage/file/{root}")
def file(deps: Deps, root: str) -> FileDetail:
    key = parse_hash32(root, "data root")
    rows = [file_row(e) for e in deps.index.find(deps.chain(), flow_series(deps), key)]
    if not rows:
        raise HTTPException(404, detail=f"no Flow submission has the data root 0x{key.hex()}")
    chain, deployment = deps.chain(), deps.deployment()
    nodes = NodeRegistry(chain, deployment.address("NodeRegistry")).usable_nodes(NodeKind.STORAGE)
    with OutboundClient(deps.data_dir.outbound_policy(), deadline_s=NODE_TIMEOUT_S,
                        max_response_bytes=MAX_STATUS_BYTES) as http, \
            ThreadPoolExecutor(max(1, min(MAX_PROBES, len(nodes)))) as pool:
        holders = list(pool.map(lambda n: file_holder(http, n, key), nodes))
    return FileDetail(root="0x" + key.hex(), size=rows[0].size, uploader=rows[0].uploader,
                      submissions=rows[::-1], nodes=holders)


class StripeRow(ApiModel):
    stripe: int
    present: int  # pieces a live node holds (virtual zero pieces count)
    data_missing: int  # of its data pieces, how many no live node holds


class ErasureHealth(ApiModel):
    """An erasure-coded file's health as this explorer sees the live nodes now."""

    ec: str  # "k+m"
    k: int
    pieces: int  # k + m per stripe
    parity_root: str
    survives_more_losses: int  # negative: some stripe cannot be read
    stripes_total: int
    degraded: int  # stripes missing a piece, still readable
    unreadable: int  # stripes with fewer than k pieces
    stripes: list[StripeRow]  # the first MAX_STRIPES
    dead_nodes: list[str]
    to_restore: dict[str, int]  # node URL -> pieces its shard should hold and does not


def erasure_health(report: HealthReport) -> ErasureHealth:
    k, total = report.record.params.k, report.record.params.pieces
    rows = [StripeRow(stripe=s.stripe, present=s.present,
                      data_missing=sum(1 for p in s.pieces if p.kind == "data" and not p.nodes)) for s in report.stripes]
    return ErasureHealth(
        ec=str(report.record.params), k=k, pieces=total, parity_root="0x" + report.record.parity_root.hex(),
        survives_more_losses=report.survives, stripes_total=len(rows),
        degraded=sum(1 for r in rows if k <= r.present < total), unreadable=sum(1 for r in rows if r.present < k),
        stripes=rows[:MAX_STRIPES], dead_nodes=report.dead_nodes,
        to_restore={url: len(pieces) for url, pieces in report.missing.items()})


def check_erasure(deps: ExplorerDeps, root: bytes) -> ErasureHealth:
    chain, deployment = deps.chain(), deps.deployment()
    registry = deployment.address("ErasureRegistry")
    if ErasureRegistry(chain, registry).record_of(root) is None:
        raise HTTPException(404, detail=f"0x{root.hex()} was not uploaded with erasure coding (no ErasureRegistry record)")
    nodes = NodeRegistry(chain, deployment.address("NodeRegistry")).usable_nodes(NodeKind.STORAGE)
    with ErasureClient([n.url for n in nodes], chain, deployment.address("Flow"), registry,
                       timeout_s=NODE_TIMEOUT_S, policy=deps.data_dir.outbound_policy()) as client:
        try:
            return erasure_health(client.health(root))
        except StorageError as exc:
            raise HTTPException(503, detail=f"cannot check its stripes now: {exc.message}") from None


@router.get("/storage/file/{root}/erasure")
def erasure(deps: Deps, root: str) -> ErasureHealth:
    key = parse_hash32(root, "data root")
    result: ErasureHealth = deps.erasure_healths.get_or_make(key, lambda: check_erasure(deps, key))
    return result


class RewardPoint(ApiModel):
    block: int
    fees: str  # wei paid into the reward pools up to this block, decimal
    paid: str  # wei paid to miners up to this block, decimal


def cumulative(deltas: list[tuple[int, int, int]]) -> list[RewardPoint]:
    """``(block, fee, paid)`` deltas in block order as running totals, one point per block,
    thinned evenly to ``MAX_SERIES_POINTS`` (the last point kept)."""
    points: list[RewardPoint] = []
    fees = paid = 0
    for block, fee, reward in deltas:
        fees, paid = fees + fee, paid + reward
        if points and points[-1].block == block:
            points.pop()  # one point per block: its totals after all its events
        points.append(RewardPoint(block=block, fees=str(fees), paid=str(paid)))
    if len(points) <= MAX_SERIES_POINTS:
        return points
    stride = -(-len(points) // (MAX_SERIES_POINTS - 1))
    return [*points[:-1:stride], points[-1]]


@router.get("/storage/rewards")
def rewards(deps: Deps) -> list[RewardPoint]:
    chain, deployment = deps.chain(), deps.deployment()
    reward = Reward(chain, deployment.address("Reward")).contract
    filled = deps.index.block_sums(chain, Series(reward, "RewardFilled", deployment.deploy_block), "amount")
    paid = deps.index.block_sums(chain, Series(reward, "DistributeReward", deployment.deploy_block), "amount")
    return cumulative(sorted([(block, fee, 0) for block, fee in filled] + [(block, 0, pay) for block, pay in paid]))
