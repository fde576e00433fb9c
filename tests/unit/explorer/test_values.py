"""The explorer's JSON values (``zgos.explorer.decode.to_jsonable``), the event index's stored
arguments (``zgos.explorer.events.encode_value``) and the fee chart's series: pure, no chain."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from zgos.explorer.decode import MAX_SAFE_INTEGER, to_jsonable
from zgos.explorer.events import decode_value, encode_value
from zgos.explorer.panels.storage import MAX_SERIES_POINTS, cumulative


def test_json_values_keep_every_digit_and_show_bytes_as_hex() -> None:
    assert to_jsonable({"a": [MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1], "b": b"\x01\x02", "c": (True, None)}) == {
        "a": [MAX_SAFE_INTEGER, str(MAX_SAFE_INTEGER + 1)], "b": "0x0102", "c": [True, None]}


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10**20), st.integers(0, 10**20)), max_size=600))
def test_fee_and_reward_series_are_running_totals_one_point_per_block(deltas: list[tuple[int, int, int]]) -> None:
    deltas.sort()
    points = cumulative(deltas)
    assert len(points) <= MAX_SERIES_POINTS
    assert [p.block for p in points] == sorted({p.block for p in points})
    assert all(int(a.fees) <= int(b.fees) and int(a.paid) <= int(b.paid) for a, b in pairwise(points))
    if deltas:
        assert (int(points[-1].fees), int(points[-1].paid)) == (sum(d[1] for d in deltas), sum(d[2] for d in deltas))


ARGUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**256), 2**256) | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), ARGUMENTS, max_size=6))
def test_stored_event_arguments_come_back_as_they_were_decoded(args: dict[str, Any]) -> None:
    assert decode_value(json.loads(json.dumps(encode_value(args)))) == args
