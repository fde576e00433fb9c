"""Column assignment: stake-proportional, complete, deterministic, seed-dependent."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.da.spec.assignment import (
    COLUMNS,
    InvalidStakes,
    columns_of,
    compute_column_owners,
    compute_epoch_seed,
    compute_quotas,
)

stakes_lists = st.lists(st.integers(min_value=1, max_value=10**24), min_size=1, max_size=40)
seeds = st.binary(min_size=32, max_size=32)


@given(stakes_lists)
def test_quotas_deal_every_column_within_one_of_the_stake_share(stakes: list[int]) -> None:
    quotas = compute_quotas(stakes)
    assert sum(quotas) == COLUMNS
    total = sum(stakes)
    for stake, quota in zip(stakes, quotas, strict=True):
        exact = COLUMNS * stake / total
        assert exact - 1 < quota < exact + 1


@given(stakes_lists, seeds)
def test_every_column_has_one_owner_matching_the_quotas(stakes: list[int], seed: bytes) -> None:
    owners = compute_column_owners(stakes, seed)
    assert len(owners) == COLUMNS
    counts = Counter(owners)
    assert [counts.get(i, 0) for i in range(len(stakes))] == compute_quotas(stakes)
    assert sorted(c for i in range(len(stakes)) for c in columns_of(owners, i)) == list(range(COLUMNS))


@given(st.lists(st.integers(1, 100), min_size=3, max_size=10), seeds)
def test_signers_holding_two_thirds_of_stake_hold_more_than_half_the_columns(stakes: list[int], seed: bytes) -> None:
    owners = compute_column_owners(stakes, seed)
    total = sum(stakes)
    order = sorted(range(len(stakes)), key=lambda i: stakes[i])
    chosen, held = [], 0
    for i in order:  # the smallest signers first: the worst case for a 2/3 certificate
        if 3 * held >= 2 * total:
            break
        chosen.append(i)
        held += stakes[i]
    columns = sum(len(columns_of(owners, i)) for i in chosen)
    assert columns >= COLUMNS // 2 + COLUMNS // 8 - len(chosen)


def test_equal_stakes_get_equal_columns_and_the_seed_changes_the_layout() -> None:
    a = compute_column_owners([5, 5, 5, 5], compute_epoch_seed("0x" + "11" * 20, 1))
    b = compute_column_owners([5, 5, 5, 5], compute_epoch_seed("0x" + "11" * 20, 2))
    assert Counter(a) == Counter(b) == {0: 32, 1: 32, 2: 32, 3: 32}
    assert a != b


def test_empty_or_zero_stakes_are_rejected() -> None:
    with pytest.raises(InvalidStakes):
        compute_quotas([])
    with pytest.raises(InvalidStakes):
        compute_quotas([0, 0])
