"""The DA panel: ``GET /api/da`` (the current epoch's quorum: each signer's stake, URL and
columns), ``GET /api/da/blobs`` (blobs newest first, a page at a time, with their status) and
``GET /api/da/blob/{id}`` (one blob: submitter, size, fee, status, the submission and
certificate transactions and the signers who signed it) and ``GET /api/da/blob/{id}/sampling``
(the explorer samples the certified blob itself, as a light client: random cells from the
signers of its epoch, each checked against its row's KZG commitment on chain; kept for
``SAMPLING_TTL_S``). Nothing on chain records sampling, so the page shows this explorer's own.

Blobs come from ``DAEntrance.BlobSubmitted``, ``BlobCertified`` and ``BlobCancelled`` events
through the explorer's event index. A blob's status follows from them: the contract moves a
blob from submitted to certified or cancelled once, never back, and refuses a second
submission of the same id."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from web3.types import EventData

from zgos.da.contracts import BlobStatus, DAContracts
from zgos.da.retriever import NotCertified, Retriever
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.events import IndexedEvent, Series
from zgos.explorer.ids import parse_hash32
from zgos.explorer.models import ApiModel

router = APIRouter(prefix="/api")
MAX_PAGE = 100
SAMPLES = 64  # cells per sampling by the explorer (spread evenly over the rows)
SIGNER_TIMEOUT_S = 3.0  # per signer: their addresses are announced by strangers


class SignerRow(ApiModel):
    address: str
    stake: str  # wei, decimal
    url: str
    columns: int  # how many of the epoch's columns it holds


class DaState(ApiModel):
    epoch: int
    total_stake: str  # wei, decimal
    signers: list[SignerRow]


class BlobRow(ApiModel):
    index: int  # position in the explorer's list (the ``before`` cursor)
    blob_id: str
    submitter: str
    epoch: int
    size: int  # bytes
    fee: str  # wei, decimal
    status: str  # submitted | certified | cancelled
    tx: str  # the submission


class BlobPage(ApiModel):
    total: int
    blobs: list[BlobRow]


class Certificate(ApiModel):
    tx: str
    block: int
    signers: list[str]
    signed_stake: str  # wei, decimal
    total_stake: str  # wei, decimal


class BlobDetail(ApiModel):
    blob: BlobRow
    certificate: Certificate | None


def da_contracts(deps: ExplorerDeps) -> DAContracts:
    return DAContracts.from_addresses(deps.chain(), deps.deployment().addresses)


def blob_id_of(event: EventData) -> bytes:
    """The blob an event is about (the key blobs are looked up by)."""
    return bytes(event["args"]["blobId"])


def blob_series(deps: ExplorerDeps, da: DAContracts, event: str) -> Series:
    """``DAEntrance``'s ``event`` (BlobSubmitted, BlobCertified, BlobCancelled) since the deployment."""
    return Series(da.entrance, event, deps.deployment().deploy_block, blob_id_of)


def blob_statuses(deps: ExplorerDeps, da: DAContracts, blob_ids: list[bytes]) -> dict[bytes, BlobStatus]:
    """Each submitted blob's status, from the index's certificates and cancellations."""
    chain = deps.chain()
    certified = deps.index.present(chain, blob_series(deps, da, "BlobCertified"), blob_ids)
    cancelled = deps.index.present(chain, blob_series(deps, da, "BlobCancelled"), blob_ids)
    return {b: BlobStatus.CERTIFIED if b in certified else BlobStatus.CANCELLED if b in cancelled
            else BlobStatus.SUBMITTED for b in blob_ids}


def blob_row(event: IndexedEvent, status: BlobStatus) -> BlobRow:
    args = event.args
    blob_id = bytes(args["blobId"])
    return BlobRow(index=event.position, blob_id="0x" + blob_id.hex(), submitter=args["submitter"],
                   epoch=int(args["epoch"]), size=int(args["size"]), fee=str(int(args["fee"])),
                   status=status.name.lower(), tx=event.tx)


@router.get("/da")
def da_state(deps: Deps) -> DaState:
    da = da_contracts(deps)
    epoch = da.current_epoch()
    if int(deps.chain().call(da.signers.functions.signerCount())) == 0:
        return DaState(epoch=epoch, total_stake="0", signers=[])
    quorum = da.quorum(epoch)
    return DaState(epoch=quorum.epoch, total_stake=str(quorum.total_stake), signers=[
        SignerRow(address=m, stake=str(stake), url=url, columns=len(quorum.columns(m)))
        for m, stake, url in zip(quorum.members, quorum.stakes, quorum.urls, strict=True)])


@router.get("/da/blobs")
def blobs(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
          before: Annotated[int | None, Query(ge=0, description="Blobs listed below this index (paging).")] = None,
          ) -> BlobPage:
    da = da_contracts(deps)
    page = deps.index.page(deps.chain(), blob_series(deps, da, "BlobSubmitted"), limit, before)
    statuses = blob_statuses(deps, da, [bytes(e.args["blobId"]) for e in page.items])
    return BlobPage(total=page.total, blobs=[blob_row(e, statuses[bytes(e.args["blobId"])]) for e in page.items])


@router.get("/da/blob/{blob_id}")
def blob(deps: Deps, blob_id: str) -> BlobDetail:
    key = parse_hash32(blob_id, "blob id")
    da = da_contracts(deps)
    found = deps.index.find(deps.chain(), blob_series(deps, da, "BlobSubmitted"), key)
    if not found:
        raise HTTPException(404, detail=f"no blob 0x{key.hex()} was submitted to DAEntrance")
    row = blob_row(found[-1], blob_statuses(deps, da, [key])[key])
    certified = deps.index.find(deps.chain(), blob_series(deps, da, "BlobCertified"), key)
    certificate = None
    if certified:
        args = certified[-1].args
        certificate = Certificate(tx=certified[-1].tx, block=certified[-1].block,
                                  signers=list(args["signers"]), signed_stake=str(args["signedStake"]),
                                  total_stake=str(args["totalStake"]))
    return BlobDetail(blob=row, certificate=certificate)


class SignerFault(ApiModel):
    signer: str
    url: str
    reason: str


class Sampling(ApiModel):
    """One sampling of a blob by this explorer."""

    blob_id: str
    sampled_at: int  # unix seconds
    samples: int
    verified: int
    available: bool
    confidence: float  # that every row is recoverable, given the verified samples
    failures: list[SignerFault]


def sample_blob(deps: ExplorerDeps, blob_id: bytes) -> Sampling:
    retriever = Retriever(da_contracts(deps), timeout_s=SIGNER_TIMEOUT_S, policy=deps.data_dir.outbound_policy())
    try:
        report = retriever.sample(blob_id, SAMPLES)
    except NotCertified as exc:
        raise HTTPException(409, detail=exc.message) from None
    return Sampling(blob_id="0x" + blob_id.hex(), sampled_at=int(time.time()), samples=report.samples,
                    verified=report.verified, available=report.available, confidence=report.confidence,
                    failures=[SignerFault(signer=f.signer, url=f.url, reason=f.reason) for f in report.failures])


@router.get("/da/blob/{blob_id}/sampling")
def sampling(deps: Deps, blob_id: str) -> Sampling:
    key = parse_hash32(blob_id, "blob id")
    if not deps.index.find(deps.chain(), blob_series(deps, da_contracts(deps), "BlobSubmitted"), key):
        raise HTTPException(404, detail=f"no blob 0x{key.hex()} was submitted to DAEntrance")
    result: Sampling = deps.samplings.get_or_make(key, lambda: sample_blob(deps, key))
    return result
