"""The proxy's budget on disk, with a clock the test moves: windows roll, holds expire, a restart
remembers the last day and forgets what is older."""

from __future__ import annotations

from pathlib import Path

import pytest

from zgos.compute.spec.limits import DAY_S, HOUR_S, CapReached, SpendCaps
from zgos.compute.user.budget import Budget


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_spend_caps_roll_with_their_windows_and_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "spending.sqlite"
    budget = Budget(path, SpendCaps(per_hour=100, per_day=250), clock=clock)
    hold = budget.hold(60)
    with pytest.raises(CapReached, match="per hour"):
        budget.hold(41)  # 60 held + 41 > 100
    budget.record_spend("0xp", 50)  # the request cost less than its worst case
    budget.release(hold)
    budget.release(budget.hold(50))
    with pytest.raises(CapReached) as refused:
        budget.hold(51)
    assert refused.value.retry_after_s == pytest.approx(HOUR_S)
    for _ in range(4):  # the first hour has passed; the day has not
        clock.now += HOUR_S
        hold = budget.hold(50)
        budget.record_spend("0xp", 50)
        budget.release(hold)
    assert budget.summary()["spent"] == {"hour": 50, "day": 250}
    with pytest.raises(CapReached, match="per day"):
        Budget(path, SpendCaps(per_hour=100, per_day=250), clock=clock).hold(1)  # restarted: 250 today
    clock.now += DAY_S
    restarted = Budget(path, SpendCaps(per_hour=100, per_day=250), clock=clock)
    assert restarted.summary()["spent"] == {"hour": 0, "day": 0}
    restarted.hold(100)


def test_a_hold_never_released_expires(tmp_path: Path) -> None:
    clock = Clock()
    budget = Budget(tmp_path / "spending.sqlite", SpendCaps(per_hour=100), hold_s=60, clock=clock)
    budget.hold(100)  # a stream whose client left before it began: nobody releases this
    with pytest.raises(CapReached, match="in flight"):
        budget.hold(1)
    clock.now += 61
    budget.hold(100)


def test_top_ups_are_capped_per_day_and_remembered(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "spending.sqlite"
    budget = Budget(path, SpendCaps(), top_up_per_day=30, clock=clock)
    budget.take_top_up("0xp", 10)
    budget.take_top_up("0xq", 20)
    with pytest.raises(CapReached):
        budget.take_top_up("0xp", 1)
    with pytest.raises(CapReached):
        Budget(path, SpendCaps(), top_up_per_day=30, clock=clock).take_top_up("0xp", 1)
    clock.now += DAY_S
    Budget(path, SpendCaps(), top_up_per_day=30, clock=clock).take_top_up("0xp", 30)
    assert Budget(path, SpendCaps(), clock=clock).summary()["topped_up_today"] == 30
