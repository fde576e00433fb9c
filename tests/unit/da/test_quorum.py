"""The 2/3-of-stake certificate rule (``zgos.da.spec.quorum``)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.da.spec.quorum import is_quorum_reached

WEI = 10**18


@st.composite
def signed_and_total(draw: st.DrawFn) -> tuple[int, int]:
    total = draw(st.integers(min_value=1, max_value=10**9 * WEI))
    return draw(st.integers(min_value=0, max_value=total)), total


@given(signed_and_total())
def test_the_quorum_is_reached_exactly_when_the_signers_hold_two_thirds_of_the_stake(case: tuple[int, int]) -> None:
    signed, total = case
    assert is_quorum_reached(signed, total) == (Fraction(signed, total) >= Fraction(2, 3))


@given(signed_and_total(), st.integers(min_value=0, max_value=10**6 * WEI))
def test_more_signed_stake_never_loses_the_quorum(case: tuple[int, int], more: int) -> None:
    signed, total = case
    if is_quorum_reached(signed, total):
        assert is_quorum_reached(min(total, signed + more), total)


@given(signed_and_total())
def test_a_quorum_is_missed_only_when_the_others_hold_more_than_a_third(case: tuple[int, int]) -> None:
    signed, total = case
    assert (not is_quorum_reached(signed, total)) == ((total - signed) * 3 > total)


@given(st.integers(min_value=1, max_value=10**9 * WEI))
def test_exactly_two_thirds_certifies_and_one_wei_less_does_not(third: int) -> None:
    total = 3 * third
    assert is_quorum_reached(2 * third, total)
    assert not is_quorum_reached(2 * third - 1, total)


@given(st.integers(min_value=0, max_value=10**9 * WEI))
def test_no_signed_stake_never_certifies(total: int) -> None:
    assert not is_quorum_reached(0, total)


@pytest.mark.parametrize(("signed", "total"), [(-1, 3), (4, 3), (0, -1)])
def test_impossible_stakes_are_refused(signed: int, total: int) -> None:
    with pytest.raises(ValueError, match="within the total stake"):
        is_quorum_reached(signed, total)
