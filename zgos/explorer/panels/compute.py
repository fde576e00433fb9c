"""The compute panel: ``GET /api/compute`` (the inference services registered in
``InferenceServing``: provider, URL, model, prices, verifiability), ``GET
/api/compute/settlements`` (``Settled`` events newest first, a page at a time), ``GET
/api/compute/tasks`` (fine-tuning tasks newest first, their on-chain state) and ``GET
/api/compute/task/{id}`` (one task, with the progress and loss curve its provider reports) and
``GET /api/compute/ledger/{address}`` (a user's ledger: available balance and a sub-account per
provider).

A task's progress comes from its provider's announced URL (``FineTuningServing``), asked
through the outbound guard (short deadline, size cap); it is advisory, the chain is the truth,
and an unreachable provider is shown with the reason."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, HTTPException, Query
from pydantic import ValidationError

from zgos.compute.contracts import ComputeContracts, ServiceInfo
from zgos.compute.finetune.contracts import FineTuningMarket, OnchainTask
from zgos.compute.finetune.wire import MAX_PROGRESS_BYTES, TaskProgress
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.events import Series
from zgos.explorer.ids import parse_address
from zgos.explorer.models import ApiModel
from zgos.runtime.outbound import OutboundClient

router = APIRouter(prefix="/api")
MAX_PAGE = 100
PROVIDER_TIMEOUT_S = 2.0  # total: the URL is announced by a stranger
MAX_SUB_ACCOUNTS = 100  # a ledger page shows at most this many providers


class InferenceService(ApiModel):
    provider: str
    url: str
    model: str
    model_hash: str  # 0x-hex: the model id (its file's storage root)
    input_price: int  # wei per token
    output_price: int  # wei per token
    verifiability: str

    @classmethod
    def of(cls, service: ServiceInfo) -> InferenceService:
        return cls(provider=service.provider, url=service.url, model=service.model,
                   model_hash="0x" + service.model_hash.hex(), input_price=service.input_price,
                   output_price=service.output_price, verifiability=service.verifiability)


class Settlement(ApiModel):
    index: int  # position in the explorer's list (the ``before`` cursor)
    provider: str
    user: str
    amount: str  # wei paid by this settlement, decimal
    total: str  # wei settled so far for this pair, decimal
    tx: str
    block: int


class SettlementPage(ApiModel):
    total: int
    settlements: list[Settlement]


class TaskRow(ApiModel):
    task_id: int
    user: str
    provider: str
    status: str  # created | started | delivered | acknowledged | settled | cancelled
    fee: str  # wei, decimal
    base_model: str
    dataset_root: str
    result_root: str | None
    created_at: int  # unix s

    @classmethod
    def of(cls, task: OnchainTask) -> TaskRow:
        return cls(task_id=task.task_id, user=task.user, provider=task.provider, status=task.status.name.lower(),
                   fee=str(task.fee), base_model="0x" + task.base_model.hex(), dataset_root="0x" + task.dataset_root.hex(),
                   result_root="0x" + task.result_root.hex() if any(task.result_root) else None,
                   created_at=task.created_at)


class TaskPage(ApiModel):
    total: int
    tasks: list[TaskRow]


class TaskDetail(ApiModel):
    task: TaskRow
    progress: TaskProgress | None
    progress_error: str | None  # why there is no progress


class SubAccountRow(ApiModel):
    provider: str
    balance: str  # wei, decimal
    pending_refund: str  # wei, decimal
    settled: str  # wei the provider has settled from it so far, decimal


class Ledger(ApiModel):
    user: str
    available: str  # wei not yet moved to a sub-account, decimal
    sub_accounts: list[SubAccountRow]


@router.get("/compute")
def compute(deps: Deps) -> list[InferenceService]:
    contracts = ComputeContracts.from_deployment(deps.chain(), deps.deployment())
    return [InferenceService.of(service) for service in contracts.services()]


@router.get("/compute/settlements")
def settlements(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
                before: Annotated[int | None, Query(ge=0, description="Settlements below this index (paging).")] = None,
                ) -> SettlementPage:
    chain, deployment = deps.chain(), deps.deployment()
    serving = ComputeContracts.from_deployment(chain, deployment).serving
    page = deps.index.page(chain, Series(serving, "Settled", deployment.deploy_block), limit, before)
    return SettlementPage(total=page.total, settlements=[
        Settlement(index=e.position, provider=e.args["provider"], user=e.args["user"], amount=str(e.args["amount"]),
                   total=str(e.args["total"]), tx=e.tx, block=e.block)
        for e in page.items])


def market(deps: ExplorerDeps) -> FineTuningMarket:
    return FineTuningMarket(deps.chain(), deps.deployment().address("FineTuningServing"))


@router.get("/compute/tasks")
def tasks(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
          before: Annotated[int | None, Query(ge=0, description="Task ids below this one (paging).")] = None,
          ) -> TaskPage:
    fine_tuning = market(deps)
    count = int(deps.chain().call(fine_tuning.contract.functions.taskCount()))  # ids 1..count
    top = count if before is None else min(before - 1, count)
    return TaskPage(total=count, tasks=[TaskRow.of(fine_tuning.get_task(i)) for i in range(top, max(top - limit, 0), -1)])


def task_progress(deps: ExplorerDeps, fine_tuning: FineTuningMarket, task: OnchainTask) -> TaskProgress | str:
    """What the task's provider reports of it, or why there is nothing."""
    url = fine_tuning.get_service(task.provider).url.rstrip("/")
    try:
        with OutboundClient(deps.data_dir.outbound_policy(), deadline_s=PROVIDER_TIMEOUT_S,
                            max_response_bytes=MAX_PROGRESS_BYTES) as http:
            answer = http.get(f"{url}/v1/finetune/tasks/{task.task_id}")
    except httpx.HTTPError as exc:  # refused by the guard, unreachable, too slow or too large
        return f"provider {url} unreachable ({type(exc).__name__})"
    if answer.status_code != 200:
        return f"provider {url} answered {answer.status_code}"
    try:
        return TaskProgress.model_validate_json(answer.content)
    except ValidationError:
        return f"provider {url} answered something that is not task progress"


@router.get("/compute/task/{task_id}")
def task(deps: Deps, task_id: int) -> TaskDetail:
    fine_tuning = market(deps)
    count = int(deps.chain().call(fine_tuning.contract.functions.taskCount()))
    if not 1 <= task_id <= count:
        raise HTTPException(404, detail=f"no fine-tuning task {task_id} ({count} tasks so far, numbered from 1)")
    onchain = fine_tuning.get_task(task_id)
    progress = task_progress(deps, fine_tuning, onchain)
    return TaskDetail(task=TaskRow.of(onchain), progress=progress if isinstance(progress, TaskProgress) else None,
                      progress_error=progress if isinstance(progress, str) else None)


@router.get("/compute/ledger/{user}")
def ledger(deps: Deps, user: str) -> Ledger:
    address = parse_address(user)
    contracts = ComputeContracts.from_deployment(deps.chain(), deps.deployment())
    rows = []
    for provider in contracts.providers_of(address)[:MAX_SUB_ACCOUNTS]:
        sub = contracts.sub_account(address, provider)
        rows.append(SubAccountRow(provider=provider, balance=str(sub.balance), pending_refund=str(sub.pending_refund),
                                  settled=str(contracts.settled(address, provider))))
    return Ledger(user=address, available=str(contracts.available(address)), sub_accounts=rows)
