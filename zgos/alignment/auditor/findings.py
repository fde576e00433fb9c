"""What one audit check concluded about one subject, before it is published.

An :class:`Observation` is either clean (no finding) or names a finding of
:mod:`zgos.alignment.spec.reports` with the score change it asks for and the evidence an
outsider needs to check it (published as JSON in storage, its root on chain). A check that
could not run because of the auditor itself (no funds, its own model missing) is not an
observation of anyone: it raises :class:`AuditorError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.core.errors import ZgError

LATENCY_DELTA = -5
REFUSAL_DELTA = -10
WRONG_OUTPUT_DELTA = -50
OVERBILLING_DELTA = -50
STORAGE_DELTA = -50
WITHHELD_DELTA = -30


class AuditorError(ZgError):
    """The auditor could not run a check (its own funds, files or services)."""


@dataclass(frozen=True)
class Observation:
    subject: str  # the operator's address
    kind: BondKind
    check: str  # which check, e.g. "compute-probe"
    finding: Finding | None = None  # None: the subject passed
    delta: int = 0
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.finding is None

    def document(self, round_n: int, auditor: str) -> bytes:
        """The published evidence: everything needed to re-check the finding, as JSON. The
        round makes each report's evidence distinct (the registry takes one report per root)."""
        document = {"auditor": auditor, "round": round_n, "subject": self.subject, "kind": self.kind.name.lower(),
                    "check": self.check, "finding": None if self.finding is None else self.finding.name.lower(),
                    "delta": self.delta, "detail": self.detail, "evidence": self.evidence}
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
