"""The local proxy's limits: which prices it accepts, how much it may spend, how long it waits.

``zg compute serve`` spends the user's money on behalf of any program that holds the install
token, and calls provider URLs that strangers announced on chain. These rules bound both
(ARCHITECTURE.md, "Among strangers"). Pure: times are passed in (seconds), amounts are neuron.

- **Price cap**: a provider whose input *or* output price per token is above ``max_price`` is
  never used, as first choice or by failover.
- **Spend caps** are rolling windows (an hour, a day). Money is committed when the proxy signs a
  receipt. A request may start only if, for every cap, what was committed in ``(now − W, now]``
  plus the worst cases held by requests still in flight plus this request's worst case (its
  signed ``maxFee``) stays within the cap. A request then commits at most its worst case, so in
  *every* interval of length W the commitments never exceed the cap (property-tested).
- **Top-up cap**: automatic top-ups follow the same rule over a day.
- **Backoff**: a provider that failed ``n`` times in a row is avoided for
  ``min(BACKOFF_BASE_S × 2^(n−1), BACKOFF_MAX_S)``.
- **Answer size**: an answer may be at most ``ANSWER_OVERHEAD_BYTES`` plus
  ``ANSWER_BYTES_PER_TOKEN`` per allowed output token; anything longer is cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

HOUR_S = 3600.0
DAY_S = 86400.0
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 600.0
ANSWER_OVERHEAD_BYTES = 64 * 1024  # headers of a chat answer, role chunk, signature event, [DONE]
ANSWER_BYTES_PER_TOKEN = 1024  # one stream event per token (~300 bytes with a long model name), escaped


@dataclass(frozen=True)
class Charge:
    """``amount`` neuron committed (or topped up) at time ``at_s``."""

    at_s: float
    amount: int


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` neuron in any ``window_s`` seconds; ``name`` says which ("hour")."""

    name: str
    window_s: float
    limit: int


@dataclass(frozen=True)
class SpendCaps:
    """The user's spend caps (None: no cap on that window)."""

    per_hour: int | None = None
    per_day: int | None = None

    def caps(self) -> tuple[Cap, ...]:
        windows = (("hour", HOUR_S, self.per_hour), ("day", DAY_S, self.per_day))
        return tuple(Cap(name, window, limit) for name, window, limit in windows if limit is not None)


class CapReached(Exception):
    """A charge would exceed ``cap``; ``retry_after_s`` is when it would fit if nothing else
    were spent (None: not by waiting alone, e.g. the charge is larger than the cap)."""

    def __init__(self, cap: Cap, committed: int, held: int, amount: int, retry_after_s: float | None) -> None:
        self.cap = cap
        self.retry_after_s = retry_after_s
        when = (f"retry in {math.ceil(retry_after_s)} s" if retry_after_s is not None
                else "this request alone is larger than the cap" if amount > cap.limit
                else "retry when requests in flight have finished")
        super().__init__(f"spending cap of {cap.limit} neuron per {cap.name} reached: {committed} committed in "
                         f"the last {cap.name}, {held} held by requests in flight, {amount} more asked; {when}")


def is_price_within_cap(input_price: int, output_price: int, max_price: int | None) -> bool:
    """Both prices per token are at most ``max_price`` (always true without a cap)."""
    return max_price is None or (input_price <= max_price and output_price <= max_price)


def is_in_window(charge: Charge, now_s: float, window_s: float) -> bool:
    """A charge counts in the window ``(now − window, now]``; one from the future (a clock that
    went back) counts too, so changing the clock never frees money."""
    return charge.at_s > now_s - window_s


def compute_committed(charges: Iterable[Charge], now_s: float, window_s: float) -> int:
    """The sum of the charges in the window ending at ``now_s``."""
    return sum(c.amount for c in charges if is_in_window(c, now_s, window_s))


def compute_retry_after_s(charges: Iterable[Charge], now_s: float, cap: Cap, held: int, amount: int) -> float | None:
    """Seconds until ``amount`` fits under ``cap`` as old charges leave the window, assuming no
    new charge and the same ``held``; 0 if it fits now, None if waiting alone never suffices."""
    if held + amount > cap.limit:
        return None
    in_window = sorted((c for c in charges if is_in_window(c, now_s, cap.window_s)), key=lambda c: c.at_s)
    remaining = sum(c.amount for c in in_window)
    wait = 0.0
    for charge in in_window:
        if remaining + held + amount <= cap.limit:
            break
        remaining -= charge.amount
        wait = max(wait, _leaves_after_s(charge, now_s, cap.window_s))
    return wait


def _leaves_after_s(charge: Charge, now_s: float, window_s: float) -> float:
    """The first float delay after which ``charge`` is out of the window (rounding included)."""
    wait = max(0.0, charge.at_s + window_s - now_s)
    while is_in_window(charge, now_s + wait, window_s):  # a few steps at most
        wait += math.ulp(now_s + wait + window_s)
    return wait


def validate_charge(charges: Iterable[Charge], now_s: float, caps: Iterable[Cap], held: int, amount: int) -> None:
    """Allow a new charge of up to ``amount`` while ``held`` is reserved by requests in flight
    only if every cap still holds: ``committed(window) + held + amount ≤ limit``. Raise
    ``CapReached`` for the first cap that would be exceeded."""
    charges = list(charges)
    for cap in caps:
        committed = compute_committed(charges, now_s, cap.window_s)
        if committed + held + amount > cap.limit:
            raise CapReached(cap, committed, held, amount, compute_retry_after_s(charges, now_s, cap, held, amount))


def compute_backoff_s(failures: int) -> float:
    """How long to avoid a provider after ``failures`` failures in a row (0 for none)."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE_S * 2.0 ** min(failures - 1, 32), BACKOFF_MAX_S)


def compute_answer_cap_bytes(max_tokens: int) -> int:
    """The most bytes a chat answer (plain or streamed) allowing ``max_tokens`` may carry."""
    return ANSWER_OVERHEAD_BYTES + ANSWER_BYTES_PER_TOKEN * max(max_tokens, 0)
