"""Fixtures of the storage unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zgos.storage import fasthash


@pytest.fixture(params=[1, 4, 8])
def native_lanes(request: pytest.FixtureRequest) -> Iterator[int]:
    """Each native Keccak in turn (1: XKCP one message at a time, 4: AVX2 lanes, 8: AVX-512
    lanes), skipped where this machine cannot run it; the widest is in use again afterwards."""
    if fasthash.native is None:
        pytest.skip("native _treehash is not built (no C compiler at install): Python path in use")
    try:
        fasthash.use_lanes(request.param)
    except ValueError:
        pytest.skip(f"this CPU cannot hash {request.param} messages at a time")
    yield request.param
    fasthash.use_lanes(fasthash.WIDEST_LANES)
