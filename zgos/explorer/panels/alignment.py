"""The alignment panel: ``GET /api/alignment`` (every operator auditors bonded or reported on in
``AlignmentRegistry``, with its score, faults and slashes per kind), ``GET
/api/alignment/reports`` (``Reported`` events newest first, a page at a time, from the event
index) and ``GET /api/alignment/subject/{address}`` (one operator's records and the reports on
it). A deployment without an ``AlignmentRegistry`` has no subjects and no reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from web3.types import EventData

from zgos.chain.standing import REGISTRY, read_subject_rows
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.events import IndexedEvent, Series
from zgos.explorer.ids import parse_address
from zgos.explorer.models import ApiModel

router = APIRouter(prefix="/api")
MAX_PAGE = 100
KINDS = {0: "storage", 2: "da-signer", 3: "compute"}  # NodeRegistry's kinds that bonds back
FINDINGS = ("latency", "refusal", "wrong-output", "withheld-cells", "storage", "other")  # Finding's order


class SubjectRow(ApiModel):
    operator: str
    kind: str
    score: int
    faults: int
    slashes: int
    slashed: str  # wei taken from its bond so far, decimal


class ReportRow(ApiModel):
    index: int  # position in the explorer's list (the ``before`` cursor)
    subject: str
    kind: str
    auditor: str
    finding: str
    evidence_root: str  # 0x-hex: a file on Flow
    score_delta: int
    score: int  # the subject's score after this report
    tx: str
    block: int


class ReportPage(ApiModel):
    total: int
    reports: list[ReportRow]


class SubjectDetail(ApiModel):
    operator: str
    records: list[SubjectRow]
    reports: list[ReportRow]  # newest first


def kind_name(kind: int) -> str:
    return KINDS.get(kind, f"kind {kind}")


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


def subject_key(event: EventData) -> bytes:
    """The reported operator's address (the key reports are looked up by)."""
    return address_bytes(str(event["args"]["subject"]))


def report_series(deps: ExplorerDeps) -> Series | None:
    deployment = deps.deployment()
    if REGISTRY not in deployment.addresses:
        return None
    registry = deps.chain().contract(REGISTRY, deployment.address(REGISTRY))
    return Series(registry, "Reported", deployment.deploy_block, subject_key)


def report_row(event: IndexedEvent) -> ReportRow:
    args = event.args
    finding = int(args["finding"])
    return ReportRow(index=event.position, subject=args["subject"], kind=kind_name(int(args["kind"])),
                     auditor=args["auditor"], finding=FINDINGS[finding] if finding < len(FINDINGS) else str(finding),
                     evidence_root="0x" + bytes(args["evidenceRoot"]).hex(), score_delta=int(args["scoreDelta"]),
                     score=int(args["score"]), tx=event.tx, block=event.block)


def subject_rows(deps: ExplorerDeps) -> list[SubjectRow]:
    deployment = deps.deployment()
    if REGISTRY not in deployment.addresses:
        return []
    chain = deps.chain()
    registry = chain.contract(REGISTRY, deployment.address(REGISTRY))
    return [SubjectRow(operator=operator, kind=kind_name(kind), score=score, faults=faults, slashes=slashes,
                       slashed=str(slashed))
            for operator, kind, score, faults, slashes, slashed in read_subject_rows(chain, registry)]


@router.get("/alignment")
def subjects(deps: Deps) -> list[SubjectRow]:
    return subject_rows(deps)


@router.get("/alignment/reports")
def reports(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
            before: Annotated[int | None, Query(ge=0, description="Reports listed below this index (paging).")] = None,
            ) -> ReportPage:
    series = report_series(deps)
    if series is None:
        return ReportPage(total=0, reports=[])
    page = deps.index.page(deps.chain(), series, limit, before)
    return ReportPage(total=page.total, reports=[report_row(e) for e in page.items])


@router.get("/alignment/subject/{address}")
def subject(deps: Deps, address: str) -> SubjectDetail:
    operator = parse_address(address)
    records = [row for row in subject_rows(deps) if row.operator.lower() == operator.lower()]
    series = report_series(deps)
    found = deps.index.find(deps.chain(), series, address_bytes(operator)) if series is not None else []
    if not records and not found:
        raise HTTPException(404, detail=f"auditors have neither bonded nor reported on {operator}")
    return SubjectDetail(operator=operator, records=records, reports=[report_row(e) for e in reversed(found)])
