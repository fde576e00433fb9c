"""Pure helpers: units, hashing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.core.hashing import keccak256, keccak256_pair
from zgos.core.units import NEURON_PER_0G, format_amount, parse_amount


def test_keccak256_matches_known_vectors() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_keccak256_pair_is_hash_of_concatenation(left: bytes, right: bytes) -> None:
    assert keccak256_pair(left, right) == keccak256(left + right)


@pytest.mark.parametrize(
    ("text", "neurons"),
    [
        ("1", NEURON_PER_0G),
        ("1.5 0G", 3 * NEURON_PER_0G // 2),
        ("20 gwei", 20 * 10**9),
        ("7 neuron", 7),
        ("1_000", 1000 * NEURON_PER_0G),
        ("0", 0),
    ],
)
def test_parse_amount_units(text: str, neurons: int) -> None:
    assert parse_amount(text) == neurons


@pytest.mark.parametrize("text", ["", "abc", "-1", "1e-30", "0.5 neuron", "1.2.3", "nan", "inf"])
def test_parse_amount_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


@given(st.integers(min_value=0, max_value=10**30))
def test_format_then_parse_round_trips_at_full_precision(neurons: int) -> None:
    assert parse_amount(format_amount(neurons, places=18)) == neurons
