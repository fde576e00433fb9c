"""Availability sampling: how samples spread over a blob's rows and what their success proves.

Rule: ``total`` samples are spread evenly over the rows, the first ``total mod rows`` rows
taking one more; within a row the columns are distinct (at most ``CELLS_PER_ROW``). If some row
were unrecoverable (at least ``CELLS_PER_ROW - CELLS_NEEDED_PER_ROW + 1`` = 65 of its 128 cells
withheld), k distinct random samples of that row would all succeed with probability at most
``C(63, k) / C(128, k)`` (about 2^-k); the confidence that every row is recoverable, once every
sample verified, is one minus that bound for the least-sampled row.

Reference: ../shared/reference/da.md, §2.10 (what recovers a blob); 0G itself samples only for
its PoDAS lottery (§4.4), so this client-side rule is zgos's own.
"""

from __future__ import annotations

from math import comb

from zgos.da.spec.blob import CELLS_NEEDED_PER_ROW, CELLS_PER_ROW

DEFAULT_SAMPLES_PER_ROW = 16


def samples_per_row(total: int, rows: int) -> list[int]:
    """How many of ``total`` samples each of ``rows`` rows gets: even, earlier rows first."""
    if total < 1 or rows < 1:
        raise ValueError(f"sampling needs at least one sample and one row, not {total} and {rows}")
    return [total // rows + (1 if row < total % rows else 0) for row in range(rows)]


def unavailability_bound(samples_in_row: int) -> float:
    """P(all k distinct samples of a row hit served cells | >= 65 of 128 cells withheld)."""
    served = CELLS_PER_ROW - CELLS_NEEDED_PER_ROW - 1
    if samples_in_row > served:
        return 0.0
    return comb(served, samples_in_row) / comb(CELLS_PER_ROW, samples_in_row)


def sampling_confidence(per_row: list[int]) -> float:
    """The confidence that every row is recoverable when every sample verified."""
    return 1.0 - unavailability_bound(min(per_row))
