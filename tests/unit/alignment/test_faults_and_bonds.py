"""Compute faults, slashes, unbonding and report rules (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.alignment.spec.bonds import (
    BPS,
    UNBOND_DELAY_BLOCKS,
    Bond,
    BondKind,
    InvalidBondKind,
    compute_slash,
    compute_unlock_block,
    get_bond_kind,
    is_challengeable,
    is_withdrawable,
)
from zgos.alignment.spec.faults import ComputeFault, ProviderTerms, compute_response_faults
from zgos.alignment.spec.reports import (
    MAX_SCORE_DELTA,
    InvalidReport,
    is_fault,
    validate_score_delta,
)
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.vouchers import UINT256_MAX, Response

MODEL = b"\x01" * 32
TERMS = ProviderTerms(Prices(3, 7), MODEL, "0x" + "aa" * 20)


def response(input_tokens: int, output_tokens: int, fee: int, model_hash: bytes = MODEL) -> Response:
    return Response(b"\x02" * 32, b"\x03" * 32, "gemma", model_hash, input_tokens, output_tokens, fee)


@given(st.integers(0, 2**64), st.integers(0, 2**64))
def test_a_response_billed_at_the_registered_prices_is_no_fault(i: int, o: int) -> None:
    assert compute_response_faults(response(i, o, 3 * i + 7 * o), TERMS) == ComputeFault.NONE


@given(st.integers(0, 2**64), st.integers(0, 2**64), st.integers(-(2**64), 2**64).filter(bool))
def test_any_other_fee_is_a_wrong_fee(i: int, o: int, off: int) -> None:
    fee = 3 * i + 7 * o + off
    if fee >= 0:
        assert compute_response_faults(response(i, o, fee), TERMS) == ComputeFault.WRONG_FEE


def test_a_fee_past_uint256_equals_no_fee_and_a_foreign_model_is_a_wrong_model() -> None:
    assert compute_response_faults(response(UINT256_MAX, 0, UINT256_MAX), TERMS) == ComputeFault.WRONG_FEE
    both = compute_response_faults(response(1, 1, 0, b"\x09" * 32), TERMS)
    assert both == ComputeFault.WRONG_FEE | ComputeFault.WRONG_MODEL


@given(st.integers(0, 10**30), st.integers(0, BPS))
def test_a_slash_never_exceeds_the_bond(amount: int, bps: int) -> None:
    assert 0 <= compute_slash(amount, bps) <= amount


def test_a_slash_share_outside_0_to_bps_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_slash(100, BPS + 1)


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 3))
def test_a_bond_is_withdrawable_only_after_the_delay_with_no_open_challenge(asked: int, block: int, opened: int) -> None:
    bond = Bond(10**18, compute_unlock_block(asked), opened)
    assert is_withdrawable(bond, block) == (block >= asked + UNBOND_DELAY_BLOCKS and opened == 0)
    assert is_challengeable(bond, block) == (block < asked + UNBOND_DELAY_BLOCKS)
    assert not is_withdrawable(Bond(10**18, 0, 0), block)


def test_bond_kinds_by_name() -> None:
    assert get_bond_kind("da-signer") == BondKind.DA_SIGNER and get_bond_kind("Storage") == BondKind.STORAGE
    with pytest.raises(InvalidBondKind, match="one of"):
        get_bond_kind("kv")


@given(st.integers(-1000, 1000))
def test_a_score_delta_is_bounded_and_a_negative_one_is_a_fault(delta: int) -> None:
    if abs(delta) <= MAX_SCORE_DELTA:
        validate_score_delta(delta)
        assert is_fault(delta) == (delta < 0)
    else:
        with pytest.raises(InvalidReport):
            validate_score_delta(delta)
