"""Properties of the local proxy's limits: price cap, rolling spend windows, backoff, answer size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec import limits as lim

AMOUNTS = st.integers(0, 10**6)
TIMES = st.floats(0, 10 * lim.DAY_S, allow_nan=False)
CHARGES = st.lists(st.builds(lim.Charge, at_s=TIMES, amount=AMOUNTS), max_size=20)
CAPS = st.builds(lim.Cap, name=st.just("window"), window_s=st.floats(1, lim.DAY_S), limit=AMOUNTS)


@given(price_in=AMOUNTS, price_out=AMOUNTS, cap=st.none() | AMOUNTS)
def test_price_cap_applies_to_input_and_output_prices(price_in: int, price_out: int, cap: int | None) -> None:
    allowed = lim.is_price_within_cap(price_in, price_out, cap)
    assert allowed == (cap is None or max(price_in, price_out) <= cap)


@given(charges=CHARGES, now=TIMES, cap=CAPS, held=AMOUNTS, amount=AMOUNTS)
def test_a_charge_is_allowed_exactly_when_it_fits_every_window(
    charges: list[lim.Charge], now: float, cap: lim.Cap, held: int, amount: int
) -> None:
    committed = sum(c.amount for c in charges if now - cap.window_s < c.at_s)
    try:
        lim.validate_charge(charges, now, [cap], held, amount)
    except lim.CapReached as refused:
        assert committed + held + amount > cap.limit
        assert refused.cap == cap and str(cap.limit) in str(refused)
        return
    assert committed + held + amount <= cap.limit


@given(charges=CHARGES, now=TIMES, cap=CAPS, held=AMOUNTS, amount=AMOUNTS)
def test_retry_after_is_the_first_moment_the_charge_fits(
    charges: list[lim.Charge], now: float, cap: lim.Cap, held: int, amount: int
) -> None:
    wait = lim.compute_retry_after_s(charges, now, cap, held, amount)
    if wait is None:
        assert held + amount > cap.limit
        return
    assert wait >= 0
    lim.validate_charge(charges, now + wait, [cap], held, amount)  # fits then
    if wait > 1e-6:  # and not noticeably earlier
        with pytest.raises(lim.CapReached):
            lim.validate_charge(charges, now + wait * (1 - 1e-9) - 1e-6, [cap], held, amount)


# A run of requests: each is checked at ``start`` holding its worst case ``reserve``, and commits
# ``spent <= reserve`` at ``start + delay`` (or nothing, when it failed).
REQUESTS = st.lists(st.tuples(st.floats(0, 3 * lim.HOUR_S), st.floats(0, 600), AMOUNTS, st.floats(0, 1)),
                    max_size=40)


@given(requests=REQUESTS, limit=st.integers(0, 3 * 10**6))
def test_committed_spending_never_exceeds_the_cap_in_any_window(
    requests: list[tuple[float, float, int, float]], limit: int
) -> None:
    cap = lim.Cap("hour", lim.HOUR_S, limit)
    events: list[tuple[float, int, str, int]] = []  # (time, order, kind, request index)
    for index, (start, delay, _, _) in enumerate(requests):
        events.append((start, 1, "check", index))
        events.append((start + delay, 0, "commit", index))
    committed: list[lim.Charge] = []
    held: dict[int, int] = {}
    for at, _, kind, index in sorted(events):
        _, _, reserve, fraction = requests[index]
        if kind == "check":
            try:
                lim.validate_charge(committed, at, [cap], sum(held.values()), reserve)
            except lim.CapReached:
                continue
            held[index] = reserve
        elif index in held:
            committed.append(lim.Charge(at, int(held.pop(index) * fraction)))
    for end in [c.at_s for c in committed]:  # every window ending at a commitment (the worst ones)
        assert lim.compute_committed([c for c in committed if c.at_s <= end], end, cap.window_s) <= limit


def test_a_charge_larger_than_the_cap_says_so() -> None:
    cap = lim.Cap("day", lim.DAY_S, 100)
    with pytest.raises(lim.CapReached, match="larger than the cap") as refused:
        lim.validate_charge([], 0.0, [cap], 0, 101)
    assert refused.value.retry_after_s is None
    with pytest.raises(lim.CapReached, match="retry in 3600 s"):
        lim.validate_charge([lim.Charge(0.0, 60)], lim.DAY_S - 3600, [cap], 0, 50)


def test_spend_caps_name_their_windows() -> None:
    assert lim.SpendCaps().caps() == ()
    assert [c.name for c in lim.SpendCaps(per_hour=1, per_day=2).caps()] == ["hour", "day"]


@given(failures=st.integers(0, 10_000))
def test_backoff_grows_with_failures_and_is_bounded(failures: int) -> None:
    backoff = lim.compute_backoff_s(failures)
    assert 0 <= backoff <= lim.BACKOFF_MAX_S
    assert (backoff == 0) == (failures == 0)
    assert lim.compute_backoff_s(failures + 1) >= backoff


@given(max_tokens=st.integers(1, 4096))
def test_answer_cap_grows_with_max_tokens(max_tokens: int) -> None:
    cap = lim.compute_answer_cap_bytes(max_tokens)
    assert cap > lim.compute_answer_cap_bytes(max_tokens - 1)
    assert cap >= max_tokens * 300  # room for one stream event per token
