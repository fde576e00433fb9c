"""Answers from strangers about files (``zgos.storage.locations``): a holdings answer either
parses into what it claims or is refused with ``ValueError``, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.storage.locations import parse_holdings, parse_segment_indexes
from zgos.storage.spec.shard import ShardConfig

ROOT = "0x" + "ab" * 32
INFO = {"tx": {"seq": 3, "size": 1000, "dataMerkleRoot": ROOT, "startEntryIndex": 8}, "finalized": True}
GOOD = {"shard": {"shardId": 1, "numShard": 4}, "files": [{"info": INFO, "segments": [0, 4]}, None]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 1 << 70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["shard", "files", "info", "segments", "shardId", "numShard", "tx", "seq"]), inner, max_size=4),
    max_leaves=20,
)


def test_a_good_answer_parses_into_its_shard_and_holdings() -> None:
    shard, holdings = parse_holdings("http://n", GOOD, 2)
    assert shard == ShardConfig(1, 4)
    first = holdings[0]
    assert first is not None and first.segments == {0, 4} and first.location.seq == 3 and holdings[1] is None


@pytest.mark.parametrize("answer", [
    {**GOOD, "files": [None]},  # fewer files than were asked about
    {**GOOD, "files": "all"},
    {**GOOD, "shard": {"shardId": 4, "numShard": 4}},
    {**GOOD, "files": [{"info": INFO, "segments": [0, -1]}, None]},
    {**GOOD, "files": [{"info": INFO, "segments": [True]}, None]},
    {**GOOD, "files": [{"info": INFO}, None]},
    {**GOOD, "files": [{"info": {}, "segments": []}, None]},
    {**GOOD, "files": [{"info": {"tx": {**INFO["tx"], "seq": "x"}}, "segments": []}, None]},
    [], None, "holdings",
])
def test_malformed_answers_are_refused(answer: Any) -> None:
    with pytest.raises(ValueError):
        parse_holdings("http://n", answer, 2)


@given(json_values, st.integers(0, 3))
def test_any_json_parses_or_is_refused_with_a_value_error(answer: Any, count: int) -> None:
    try:
        _, holdings = parse_holdings("http://n", answer, count)
    except ValueError:
        return
    assert len(holdings) == count
    assert all(h.location.seq >= 0 and h.location.size >= 0 for h in holdings if h is not None)


@given(st.lists(st.integers(0, 1 << 40), max_size=20))
def test_segment_index_lists_parse_to_their_set(indexes: list[int]) -> None:
    assert parse_segment_indexes(indexes) == set(indexes)
