"""The erasure-coding layout rule (zgos/storage/spec/erasure.py): stripes, parity file, placement."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.storage.spec.erasure import (
    ErasureParams,
    InvalidErasureParams,
    InvalidLayout,
    compute_erasure_overhead,
    compute_residue_owners,
    compute_stripe_layout,
    decode_groups,
    encode_groups,
    is_valid_parity_start,
    select_partition,
)
from zgos.storage.spec.shard import ShardConfig


@st.composite
def partitions(draw: st.DrawFn) -> list[ShardConfig]:
    """A random partition of residues mod 2^e into shard configs (split a shard in two, repeatedly)."""
    groups = [ShardConfig(0, 1)]
    for _ in range(draw(st.integers(0, 12))):
        index = draw(st.integers(0, len(groups) - 1))
        g = groups[index]
        if g.num_shard >= 16:
            continue
        groups[index : index + 1] = [ShardConfig(g.shard_id, g.num_shard * 2), ShardConfig(g.shard_id + g.num_shard, g.num_shard * 2)]
    return draw(st.permutations(groups))


def test_erasure_params_parse_and_reject() -> None:
    assert ErasureParams.parse("4+2") == ErasureParams(4, 2)
    assert str(ErasureParams(10, 4)) == "10+4"
    for bad in ("4", "4+", "+2", "0+2", "4+0", "a+b", "200+100", "4+2+1"):
        with pytest.raises(InvalidErasureParams):
            ErasureParams.parse(bad)


@settings(max_examples=200, deadline=None)
@given(partitions(), st.integers(1, 6), st.integers(1, 3), st.integers(0, 10_000), st.integers(1, 80))
def test_every_stripe_lies_on_distinct_groups_and_every_segment_in_one_stripe(
    groups: list[ShardConfig], k: int, m: int, first: int, segments: int,
) -> None:
    params = ErasureParams(k, m)
    if len(groups) < k + m:
        with pytest.raises(InvalidLayout, match="distinct shards"):
            compute_stripe_layout(params, first, segments, groups)
        return
    layout = compute_stripe_layout(params, first, segments, groups)
    owners = compute_residue_owners(groups)
    n = len(owners)
    seen_data = [i for s in layout.stripes for i in s.data if i is not None]
    assert sorted(seen_data) == list(range(segments)), "every data segment in exactly one stripe"
    parity_positions = [j for s in layout.stripes for j in s.parity]
    assert len(set(parity_positions)) == len(parity_positions) == m * len(layout.stripes)
    assert all(0 <= j < layout.parity_segments for j in parity_positions)
    assert layout.parity_segments >= n, "the parity file spans n segments so the Flow aligns it"
    for stripe in layout.stripes:
        assert len(stripe.data) == k and len(stripe.parity) == m
        real = [(i, g) for i, g in zip(stripe.data, stripe.data_groups, strict=True) if i is not None]
        for i, g in real:
            assert owners[(first + i) % n] == g, "a data piece lies where the shard rule puts it"
        for j, g in zip(stripe.parity, stripe.parity_groups, strict=True):
            assert owners[j % n] == g, "a parity piece lies where the shard rule puts it"
        used = [g for _, g in real] + list(stripe.parity_groups)
        assert len(set(used)) == len(used), "the pieces of a stripe are on distinct groups"
        assert [i for i, _ in real] == sorted(i for i, _ in real) and stripe.data[len(real):] == (None,) * (k - len(real))


def test_one_node_per_shard_layout_is_tight() -> None:
    """8 shards, 4+2, 64 segments: 16 full stripes, parity file of exactly 32 segments (no filler)."""
    groups = [ShardConfig(i, 8) for i in range(8)]
    layout = compute_stripe_layout(ErasureParams(4, 2), 3, 64, groups)
    assert len(layout.stripes) == 16 and all(None not in s.data for s in layout.stripes)
    assert layout.parity_segments == 32
    assert compute_erasure_overhead(layout, 64) == 1.5


def test_six_nodes_of_mixed_shards_hold_4_plus_2_on_distinct_nodes() -> None:
    groups = [ShardConfig(0, 4), ShardConfig(1, 4), ShardConfig(2, 8), ShardConfig(3, 8), ShardConfig(6, 8), ShardConfig(7, 8)]
    layout = compute_stripe_layout(ErasureParams(4, 2), 0, 24, groups)
    for stripe in layout.stripes:
        used = [g for g in stripe.data_groups if g is not None] + list(stripe.parity_groups)
        assert len(set(used)) == len(used)


def test_too_few_groups_are_refused_with_a_hint() -> None:
    with pytest.raises(InvalidLayout, match="needs 6 nodes in distinct shards") as info:
        compute_stripe_layout(ErasureParams(4, 2), 0, 10, [ShardConfig(i, 4) for i in range(4)])
    assert "--shard i/8" in (info.value.hint or "")


def test_overlapping_or_incomplete_groups_are_not_a_partition() -> None:
    with pytest.raises(InvalidLayout, match="both hold residue"):
        compute_residue_owners([ShardConfig(0, 2), ShardConfig(0, 4), ShardConfig(1, 2)])
    with pytest.raises(InvalidLayout, match="no group holds"):
        compute_residue_owners([ShardConfig(0, 2)])


@given(partitions(), st.lists(st.integers(0, 15), max_size=6))
def test_select_partition_finds_a_partition_among_extra_nodes(groups: list[ShardConfig], extra: list[int]) -> None:
    configs = list(groups) + [ShardConfig(e % 2, 2) for e in extra] + list(groups[:2])
    chosen = select_partition(configs)
    assert chosen is not None
    compute_residue_owners([configs[i] for i in chosen])  # raises unless a partition
    assert len(chosen) >= len(groups), "as many groups as the best partition"


def test_select_partition_none_when_a_residue_is_missing() -> None:
    assert select_partition([ShardConfig(0, 4), ShardConfig(1, 4), ShardConfig(2, 4)]) is None
    assert select_partition([]) is None


@given(partitions())
def test_group_encoding_round_trips(groups: list[ShardConfig]) -> None:
    assert decode_groups(encode_groups(groups)) == tuple(groups)


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"\x00\x00\x00\x05\x00\x00\x00\x04", b"\x00\x00\x00\x00\x00\x00\x00\x03"])
def test_malformed_group_encoding_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidLayout):
        decode_groups(data)


def test_parity_start_must_be_aligned_to_the_modulus() -> None:
    groups = [ShardConfig(i, 8) for i in range(8)]
    assert is_valid_parity_start(16, groups) and not is_valid_parity_start(12, groups)
