"""How a measured cost grows with network size: the arithmetic ``bench_scale`` states its claims with.

* ``compute_slope``: the least-squares slope of ``y`` in ``x`` (gas per extra signer);
* ``compute_growth_exponent``: the least-squares slope in log-log space, ``k`` in ``y ~ x**k``
  (1 is linear, above 1 grows faster than linear, 0 is flat);
* ``compute_spread``: how far a series strays from its first value, as the largest relative
  deviation (``0.2`` means within +-20%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _require_pairs(xs: Sequence[float], ys: Sequence[float]) -> None:
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need at least two (x, y) pairs of equal length, got {len(xs)} and {len(ys)}")
    if len(set(xs)) < 2:
        raise ValueError("need at least two distinct x")


def compute_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` against ``xs``. Raises ``ValueError`` with fewer than
    two pairs or a single distinct ``x``."""
    _require_pairs(xs, ys)
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    variance = sum((x - mean_x) ** 2 for x in xs)
    return covariance / variance


def compute_growth_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """``k`` of the best fit ``y ~ c * x**k`` (the slope of ``log y`` on ``log x``). Every value
    must be positive; raises ``ValueError`` otherwise."""
    if any(v <= 0 for v in (*xs, *ys)):
        raise ValueError("a growth exponent needs positive values")
    return compute_slope([math.log(x) for x in xs], [math.log(y) for y in ys])


def compute_spread(values: Sequence[float]) -> float:
    """The largest ``|v / values[0] - 1|``: 0 for a flat series. Raises ``ValueError`` when the
    series is empty or starts at 0."""
    if not values or values[0] == 0:
        raise ValueError("a spread needs a non-zero first value")
    return max(abs(v / values[0] - 1) for v in values)
