"""Retrieval and availability sampling straight from the signers, verifying every cell.

Both read the blob's record and row commitments from the chain (``DAEntrance``), so nothing a
signer or disperser says is trusted: every cell is checked against its row's KZG commitment
before use.

- ``Retriever.retrieve``: asks the signers holding the most columns first (in parallel) until
  every row has >= 64 verified cells, falls back to the others when one fails or serves bad
  cells, then recovers the missing cells and returns the exact bytes.
- ``Retriever.sample``: draws random cells spread evenly over the rows, requests each from the
  signer assigned its column, verifies it, and reports per-signer failures, with the confidence
  of ``zgos.da.spec.sampling``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field

import httpx

from zgos.core.errors import ZgError
from zgos.da.client import SignerClient
from zgos.da.contracts import BlobStatus, DAContracts, Quorum
from zgos.da.rpc import RpcError
from zgos.da.spec.blob import CELLS_NEEDED_PER_ROW, CELLS_PER_ROW, BlobHeader
from zgos.da.spec.encoding import Cell, Encoder, InsufficientCells, verify_cells
from zgos.da.spec.sampling import DEFAULT_SAMPLES_PER_ROW, samples_per_row, sampling_confidence
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.outbound import pin_target

FETCH_TIMEOUT_S = 30.0

CellIndex = tuple[int, int]  # (row, column)
FailureHook = Callable[["SignerFailure"], None]


class NotCertified(ZgError):
    """The blob exists on-chain but has no accepted certificate."""


class SignerRefused(ZgError):
    """The address policy does not let this reader reach a signer's announced address."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class SignerFailure:
    signer: str
    url: str
    reason: str

    def __str__(self) -> str:
        return f"signer {self.signer} ({self.url}): {self.reason}"


@dataclass
class SampleReport:
    blob_id: bytes
    samples: int
    verified: int
    confidence: float
    failures: list[SignerFailure] = field(default_factory=list)
    failed_cells: list[CellIndex] = field(default_factory=list)
    picks: list[CellIndex] = field(default_factory=list)  # every cell asked for

    @property
    def available(self) -> bool:
        return self.verified == self.samples


def rows_covered(have: Iterable[CellIndex], rows: int) -> bool:
    """True if every one of ``rows`` rows has the cells needed to recover it."""
    counts = [0] * rows
    for row, _ in have:
        counts[row] += 1
    return min(counts) >= CELLS_NEEDED_PER_ROW


def next_batch(remaining: list[int], quorum: Quorum, have: Iterable[CellIndex]) -> list[int]:
    """Take from ``remaining`` (in order) the signers to ask at once: enough that, with the
    columns already held, they would cover the columns needed; at least one."""
    planned = len({column for _, column in have})
    batch: list[int] = []
    while remaining and planned < CELLS_NEEDED_PER_ROW:
        index = remaining.pop(0)
        batch.append(index)
        planned += len(quorum.columns(quorum.members[index]))
    return batch or [remaining.pop(0)]


def pick_samples(per_row: list[int], rng: random.Random) -> list[CellIndex]:
    """Distinct random columns in each row, as many as ``per_row`` says (at most a row)."""
    return [(row, column) for row, k in enumerate(per_row)
            for column in rng.sample(range(CELLS_PER_ROW), min(k, CELLS_PER_ROW))]


class Retriever:
    """Reads blobs from the signers of their epoch. A signer's announced address is resolved
    and checked against ``policy`` first, and the connection pinned to the checked address (no
    reader, the explorer or an auditor least of all, may be steered at its own network)."""

    def __init__(self, da: DAContracts, encoder: Encoder | None = None, timeout_s: float = FETCH_TIMEOUT_S, *,
                 policy: AddressPolicy) -> None:
        self.da = da
        self.encoder = encoder
        self.timeout_s = timeout_s
        self.policy = policy

    def _certified(self, blob_id: bytes) -> tuple[BlobHeader, Quorum]:
        record = self.da.blob(blob_id)
        if record.status is not BlobStatus.CERTIFIED:
            raise NotCertified(
                f"blob 0x{blob_id.hex()} is {record.status.name.lower()}, not certified",
                "wait for the disperser to confirm it (`zg da status`)",
            )
        return self.da.header(blob_id, record), self.da.quorum(record.epoch)

    def _fetch(self, url: str, blob_id: bytes, indices: list[CellIndex] | None) -> list[Cell]:
        try:
            target = pin_target(url, self.policy, self.timeout_s)
        except httpx.TransportError as exc:
            raise SignerRefused(url, str(exc)) from None
        with SignerClient(target, self.timeout_s) as client:
            return client.get_cells(blob_id, indices)

    # --- retrieval -----------------------------------------------------------------------

    def retrieve(
        self, blob_id: bytes, progress: Callable[[int], None] | None = None, on_failure: FailureHook | None = None,
    ) -> bytes:
        """The blob's exact bytes; raises ``InsufficientCells`` naming every signer that failed."""
        header, quorum = self._certified(blob_id)
        remaining = sorted(range(len(quorum.members)), key=lambda i: (-len(quorum.columns(quorum.members[i])), i))
        have: dict[CellIndex, Cell] = {}
        failures: list[SignerFailure] = []
        while remaining and not rows_covered(have, header.rows):
            batch = next_batch(remaining, quorum, have)
            with futures.ThreadPoolExecutor(len(batch)) as pool:
                for cells, failure in pool.map(lambda i: self._try_signer(quorum, i, blob_id, header), batch):
                    if failure is not None:
                        failures.append(failure)
                        if on_failure is not None:
                            on_failure(failure)
                        continue
                    have.update(((cell.row, cell.column), cell) for cell in cells)
                    if progress is not None:
                        progress(len(cells))
        if not rows_covered(have, header.rows):
            detail = "; ".join(str(f) for f in failures) or "no signer holds enough columns"
            raise InsufficientCells(
                f"blob 0x{blob_id.hex()} cannot be recovered: fewer than {CELLS_NEEDED_PER_ROW} "
                f"verified cells in some row ({detail})",
                "too many signers are unreachable or withholding data",
            )
        return (self.encoder or Encoder(workers=0)).decode(header, have.values(), verified=True)

    def _try_signer(
        self, quorum: Quorum, index: int, blob_id: bytes, header: BlobHeader
    ) -> tuple[list[Cell], SignerFailure | None]:
        member, url = quorum.members[index], quorum.urls[index]
        columns = set(quorum.columns(member))
        try:
            cells = self._fetch(url, blob_id, None)
        except (RpcError, SignerRefused) as exc:
            return [], SignerFailure(member, url, exc.reason)
        cells = [c for c in cells if c.column in columns and 0 <= c.row < header.rows]
        if not verify_cells(header, cells):
            return [], SignerFailure(member, url, "served cells that fail their KZG proofs")
        return cells, None

    # --- sampling ------------------------------------------------------------------------

    def sample(self, blob_id: bytes, samples: int | None = None, rng: random.Random | None = None) -> SampleReport:
        """Request ``samples`` random cells (default 16 per row) and verify each."""
        header, quorum = self._certified(blob_id)
        total = samples if samples is not None else DEFAULT_SAMPLES_PER_ROW * header.rows
        if total < 1:
            raise ZgError("the number of samples must be at least 1")
        per_row = samples_per_row(total, header.rows)
        picks = pick_samples(per_row, rng or random.SystemRandom())
        by_owner: dict[int, list[CellIndex]] = defaultdict(list)
        for row, column in picks:
            by_owner[quorum.column_owners[column]].append((row, column))
        report = SampleReport(blob_id, len(picks), 0, sampling_confidence(per_row), picks=list(picks))
        with futures.ThreadPoolExecutor(max(1, len(by_owner))) as pool:
            for owner, cells, error in pool.map(lambda o: self._ask_owner(quorum, o, blob_id, by_owner), list(by_owner)):
                self._check_samples(report, header, quorum, owner, set(by_owner[owner]), cells, error)
        if not report.available:
            report.confidence = 0.0
        return report

    def _ask_owner(self, quorum: Quorum, owner: int, blob_id: bytes,
                   by_owner: Mapping[int, list[CellIndex]]) -> tuple[int, list[Cell], str]:
        try:
            return owner, self._fetch(quorum.urls[owner], blob_id, by_owner[owner]), ""
        except (RpcError, SignerRefused) as exc:
            return owner, [], exc.reason

    @staticmethod
    def _check_samples(report: SampleReport, header: BlobHeader, quorum: Quorum, owner: int,
                       wanted: set[CellIndex], cells: list[Cell], error: str) -> None:
        """Count the wanted cells that verify; report the owner's failure for the rest."""
        good = {(c.row, c.column) for c in cells if (c.row, c.column) in wanted and verify_cells(header, [c])}
        report.verified += len(good)
        missing = sorted(wanted - good)
        if missing:
            reason = error or f"withheld or served invalid cells for {len(missing)} of {len(wanted)} samples"
            report.failures.append(SignerFailure(quorum.members[owner], quorum.urls[owner], reason))
            report.failed_cells += missing
