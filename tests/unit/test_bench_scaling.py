"""bench.scaling: the slopes and growth exponents bench_scale states its claims with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.scaling import compute_growth_exponent, compute_slope, compute_spread

SIZES = [1.0, 4.0, 16.0, 32.0]


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_slope_of_a_line_is_its_gradient(gradient: float, offset: float) -> None:
    assert compute_slope(SIZES, [gradient * x + offset for x in SIZES]) == pytest.approx(gradient, abs=1e-6)


@given(st.floats(0.0, 3.0), st.floats(1e-3, 1e6))
def test_growth_exponent_of_a_power_law_is_its_power(power: float, scale: float) -> None:
    assert compute_growth_exponent(SIZES, [scale * x**power for x in SIZES]) == pytest.approx(power, abs=1e-9)


def test_spread_is_the_largest_relative_deviation_from_the_first_value() -> None:
    assert compute_spread([100.0, 90.0, 115.0, 104.0]) == pytest.approx(0.15)


def test_slope_refuses_a_single_size() -> None:
    with pytest.raises(ValueError):
        compute_slope([4.0, 4.0], [1.0, 2.0])
