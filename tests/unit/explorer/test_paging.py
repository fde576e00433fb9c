"""The explorer's paging rule (``zgos.explorer.events.page_of``) and its JSON values
(``zgos.explorer.decode.to_jsonable``): pure, no chain."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from zgos.explorer.decode import MAX_SAFE_INTEGER, to_jsonable
from zgos.explorer.events import page_of
from zgos.explorer.panels.storage import MAX_SERIES_POINTS, cumulative


@given(st.integers(0, 300), st.integers(1, 100))
def test_following_the_before_cursor_lists_every_entry_once_newest_first(total: int, limit: int) -> None:
    entries = list(range(total))
    seen: list[int] = []
    before = None
    while page := page_of(entries, limit, before):
        assert len(page) <= limit and all(position == entry for position, entry in page)
        seen += [position for position, _ in page]
        before = page[-1][0]
    assert seen == list(reversed(entries))


@given(st.integers(0, 50), st.integers(1, 10), st.integers(0, 100))
def test_a_page_holds_only_entries_below_the_cursor(total: int, limit: int, before: int) -> None:
    page = page_of(list(range(total)), limit, before)
    assert all(position < before for position, _ in page)
    assert len(page) == min(limit, min(before, total))


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
