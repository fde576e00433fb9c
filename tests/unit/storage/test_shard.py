"""The shard rule (storage.md §3.5, §4.5) and node selection covering every shard (§5.3 step 7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.storage.spec.merkle import SECTORS_PER_SEGMENT
from zgos.storage.spec.shard import (
    InvalidShardConfig,
    ShardConfig,
    compute_coverage,
    compute_flow_segment,
    compute_shard_segments,
    covers,
    select_nodes,
)


@st.composite
def shard_configs(draw: st.DrawFn, max_log: int = 4) -> ShardConfig:
    n = 1 << draw(st.integers(0, max_log))
    return ShardConfig(draw(st.integers(0, n - 1)), n)


def test_shard_config_parses_id_over_num() -> None:
    assert ShardConfig.parse("1/4") == ShardConfig(1, 4)
    assert str(ShardConfig(3, 8)) == "3/8"
    assert ShardConfig.from_json({"shardId": 2, "numShard": 4}).to_json() == {"shardId": 2, "numShard": 4}


@pytest.mark.parametrize("text", ["1/3", "4/4", "-1/2", "a/b", "1", "1/0", "", "1/2/3"])
def test_bad_shard_config_is_rejected_with_reason(text: str) -> None:
    with pytest.raises(InvalidShardConfig):
        ShardConfig.parse(text)


def test_shard_config_from_bad_json_is_rejected() -> None:
    for value in (None, [], {"shardId": "0", "numShard": 1}, {"shardId": True, "numShard": 1}, {"numShard": 2}):
        with pytest.raises(InvalidShardConfig):
            ShardConfig.from_json(value)


@given(shard_configs(), st.integers(0, 1 << 40), st.integers(0, 300))
def test_shard_segments_are_exactly_the_held_flow_segments(shard: ShardConfig, start: int, n: int) -> None:
    held = list(compute_shard_segments(start, n, shard))
    assert held == [i for i in range(n) if shard.holds(compute_flow_segment(start, i))]


@given(st.integers(0, 4), st.integers(0, 1 << 40), st.integers(0, 300))
def test_the_shards_of_one_num_partition_every_file(log_n: int, start: int, n: int) -> None:
    num = 1 << log_n
    parts = [set(compute_shard_segments(start, n, ShardConfig(i, num))) for i in range(num)]
    assert sum(len(p) for p in parts) == n
    assert set().union(*parts) == set(range(n))


@given(shard_configs(), shard_configs())
def test_intersects_means_some_segment_is_held_by_both(a: ShardConfig, b: ShardConfig) -> None:
    modulus = max(a.num_shard, b.num_shard)
    assert a.intersects(b) == any(a.holds(s) and b.holds(s) for s in range(modulus))


def test_file_segment_is_flow_segment_from_start_entry() -> None:
    assert compute_flow_segment(3 * SECTORS_PER_SEGMENT, 2) == 5
    assert compute_flow_segment(3 * SECTORS_PER_SEGMENT + 17, 0) == 3  # small file inside segment 3


@given(st.lists(shard_configs(), max_size=10), st.integers(1, 3))
def test_select_nodes_covers_whenever_all_nodes_cover(shards: list[ShardConfig], replicas: int) -> None:
    chosen = select_nodes(shards, replicas)
    if covers(shards, replicas):
        assert chosen is not None
        assert covers([shards[i] for i in chosen], replicas)
        assert chosen == sorted(set(chosen))
    else:
        assert chosen is None


@given(st.lists(shard_configs(), min_size=1, max_size=10))
def test_coverage_counts_holders_of_every_residue(shards: list[ShardConfig]) -> None:
    counts = compute_coverage(shards)
    for residue, count in enumerate(counts):
        assert count == sum(s.holds(residue) for s in shards)


def test_select_nodes_prefers_few_shards_and_skips_useless_ones() -> None:
    shards = [ShardConfig(0, 2), ShardConfig(1, 2), ShardConfig(0, 1), ShardConfig(1, 4)]
    assert select_nodes(shards, 1) == [2]
    assert select_nodes(shards, 2) == [0, 1, 2]
    assert select_nodes(shards[:2], 2) is None
    assert select_nodes([], 1) is None
