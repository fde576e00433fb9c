"""Retrieval and availability sampling straight from the signers, verifying every cell.

Both read the blob's record and row commitments from the chain (``DAEntrance``), so nothing a
signer or disperser says is trusted: every cell is checked against its row's KZG commitment
before use.

- ``Retriever.retrieve``: asks the signers holding the most columns first (in parallel) until
  every row has >= 64 verified cells, falls back to the others when one fails or serves bad
  cells, then recovers the missing cells and returns the exact bytes.
- ``Retriever.sample``: draws random cells spread evenly over the rows, requests each from the
  signer assigned its column, verifies it, and reports per-signer failures. If some row were
  unrecoverable (>= 65 of its 128 cells withheld), k distinct random samples of that row would
  all succeed with probability at most C(63, k) / C(128, k) ~ 2^-k; the reported confidence is
  one minus that bound for the least-sampled row.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from math import comb

from zgos.core.errors import ZgError
from zgos.da.contracts import BlobStatus, DAContracts, Quorum
from zgos.da.rpc import SignerClient
from zgos.da.spec.blob import CELLS_NEEDED_PER_ROW, CELLS_PER_ROW, BlobHeader
from zgos.da.spec.encoding import Cell, Encoder, InsufficientCells, verify_cells

DEFAULT_SAMPLES_PER_ROW = 16
FETCH_TIMEOUT_S = 30.0


class NotCertified(ZgError):
    """The blob exists on-chain but has no accepted certificate."""


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
    failed_cells: list[tuple[int, int]] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.verified == self.samples


def unavailability_bound(samples_in_row: int) -> float:
    """P(all k distinct samples of a row hit served cells | >= 65 of 128 cells withheld)."""
    served = CELLS_PER_ROW - CELLS_NEEDED_PER_ROW - 1
    if samples_in_row > served:
        return 0.0
    return comb(served, samples_in_row) / comb(CELLS_PER_ROW, samples_in_row)


class Retriever:
    def __init__(self, da: DAContracts, encoder: Encoder | None = None, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self.da = da
        self.encoder = encoder
        self.timeout_s = timeout_s

    def _certified(self, blob_id: bytes) -> tuple[BlobHeader, Quorum]:
        record = self.da.blob(blob_id)
        if record.status is not BlobStatus.CERTIFIED:
            raise NotCertified(
                f"blob 0x{blob_id.hex()} is {record.status.name.lower()}, not certified",
                "wait for the disperser to confirm it (`zg da status`)",
            )
        return self.da.header(blob_id), self.da.quorum(record.epoch)

    def _fetch(self, url: str, blob_id: bytes, indices: list[tuple[int, int]] | None) -> list[Cell]:
        with SignerClient(url, self.timeout_s) as client:
            return client.get_cells(blob_id, indices)

    def retrieve(
        self, blob_id: bytes, progress: Callable[[int], None] | None = None,
        on_failure: Callable[[SignerFailure], None] | None = None,
    ) -> bytes:
        """The blob's exact bytes; raises ``InsufficientCells`` naming every signer that failed."""
        header, quorum = self._certified(blob_id)
        order = sorted(
            range(len(quorum.members)),
            key=lambda i: (-len(quorum.columns(quorum.members[i])), i),
        )
        have: dict[tuple[int, int], Cell] = {}
        failures: list[SignerFailure] = []

        def covered() -> bool:
            counts = [0] * header.rows
            for row, _ in have:
                counts[row] += 1
            return min(counts) >= CELLS_NEEDED_PER_ROW

        def columns_covered() -> int:
            return len({column for _, column in have})

        remaining = list(order)
        while remaining and not covered():
            batch: list[int] = []
            planned = columns_covered()
            while remaining and planned < CELLS_NEEDED_PER_ROW:
                index = remaining.pop(0)
                batch.append(index)
                planned += len(quorum.columns(quorum.members[index]))
            if not batch:
                batch = [remaining.pop(0)]
            with futures.ThreadPoolExecutor(len(batch)) as pool:
                results = pool.map(lambda i: self._try_signer(quorum, i, blob_id, header), batch)
                for cells, failure in results:
                    if failure is not None:
                        failures.append(failure)
                        if on_failure is not None:
                            on_failure(failure)
                        continue
                    for cell in cells:
                        have[(cell.row, cell.column)] = cell
                    if progress is not None:
                        progress(len(cells))
        if not covered():
            detail = "; ".join(str(f) for f in failures) or "no signer holds enough columns"
            raise InsufficientCells(
                f"blob 0x{blob_id.hex()} cannot be recovered: fewer than {CELLS_NEEDED_PER_ROW} "
                f"verified cells in some row ({detail})",
                "too many signers are unreachable or withholding data",
            )
        encoder = self.encoder or Encoder(workers=0)
        return encoder.decode(header, have.values(), verified=True)

    def _try_signer(
        self, quorum: Quorum, index: int, blob_id: bytes, header: BlobHeader
    ) -> tuple[list[Cell], SignerFailure | None]:
        member, url = quorum.members[index], quorum.urls[index]
        columns = set(quorum.columns(member))
        try:
            cells = self._fetch(url, blob_id, None)
        except ZgError as exc:
            return [], SignerFailure(member, url, str(exc).split(": ", 1)[-1])
        cells = [c for c in cells if c.column in columns and 0 <= c.row < header.rows]
        if not verify_cells(header, cells):
            return [], SignerFailure(member, url, "served cells that fail their KZG proofs")
        return cells, None

    def sample(self, blob_id: bytes, samples: int | None = None, rng: random.Random | None = None) -> SampleReport:
        """Request ``samples`` random cells (default 16 per row) and verify each."""
        header, quorum = self._certified(blob_id)
        rng = rng or random.SystemRandom()
        total = samples if samples is not None else DEFAULT_SAMPLES_PER_ROW * header.rows
        if total < 1:
            raise ZgError("the number of samples must be at least 1")
        per_row = [total // header.rows + (1 if r < total % header.rows else 0) for r in range(header.rows)]
        picks = [
            (row, column)
            for row, k in enumerate(per_row)
            for column in rng.sample(range(CELLS_PER_ROW), min(k, CELLS_PER_ROW))
        ]
        by_owner: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for row, column in picks:
            by_owner[quorum.column_owners[column]].append((row, column))
        report = SampleReport(
            blob_id, len(picks), 0,
            1.0 - unavailability_bound(min(k for k in per_row) if per_row else 0),
        )

        def ask(owner: int) -> tuple[int, list[Cell], str]:
            try:
                return owner, self._fetch(quorum.urls[owner], blob_id, by_owner[owner]), ""
            except ZgError as exc:
                return owner, [], str(exc).split(": ", 1)[-1]

        with futures.ThreadPoolExecutor(max(1, len(by_owner))) as pool:
            for owner, cells, error in pool.map(ask, list(by_owner)):
                wanted = set(by_owner[owner])
                good = {
                    (c.row, c.column) for c in cells
                    if (c.row, c.column) in wanted and verify_cells(header, [c])
                }
                report.verified += len(good)
                missing = sorted(wanted - good)
                if missing:
                    reason = error or (
                        f"withheld or served invalid cells for {len(missing)} of {len(wanted)} samples"
                    )
                    report.failures.append(SignerFailure(quorum.members[owner], quorum.urls[owner], reason))
                    report.failed_cells += missing
        if not report.available:
            report.confidence = 0.0
        return report
