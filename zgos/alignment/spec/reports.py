"""Off-chain findings: what auditors see that the chain cannot check (issue 17).

Latency, refused requests, wrong outputs on re-execution, DA cells withheld: an auditor uploads
its evidence to storage and calls ``AlignmentRegistry.report(subject, kind, finding, root,
delta)`` from its registered account. The contract only checks that the evidence root is a file
on ``Flow`` and that this auditor has not reported the same evidence on the same subject
before; it adds ``delta`` (at most ``MAX_SCORE_DELTA`` either way) to the subject's score and
counts a fault for a negative delta. Reports never slash. Pure: no I/O.
"""

from __future__ import annotations

from enum import IntEnum

MAX_SCORE_DELTA = 100  # the most one report moves a score, either way


class Finding(IntEnum):
    """What a report is about (``AlignmentRegistry.FINDING_COUNT`` kinds)."""

    LATENCY = 0
    REFUSAL = 1
    WRONG_OUTPUT = 2
    WITHHELD_CELLS = 3
    STORAGE = 4
    OTHER = 5


class InvalidReport(ValueError):
    """A report the contract refuses."""


def validate_score_delta(delta: int) -> None:
    """Raise ``InvalidReport`` unless ``-MAX_SCORE_DELTA <= delta <= MAX_SCORE_DELTA``."""
    if not -MAX_SCORE_DELTA <= delta <= MAX_SCORE_DELTA:
        raise InvalidReport(f"a score delta is within ±{MAX_SCORE_DELTA}, got {delta}")


def is_fault(delta: int) -> bool:
    """A report counts as a fault when it lowers the score."""
    return delta < 0
