"""Segment validation, flow proofs and the pre-transaction cache: properties of the rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.core.hashing import keccak256
from zgos.storage.node.uploads import CacheFull, UploadCache
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import (
    FlowItem,
    FlowTree,
    Submission,
    SubmissionNode,
    compute_flow_items,
    compute_flow_proof,
    compute_flow_root,
    compute_node_heights,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.merkle import (
    ZERO_HASHES,
    InvalidProof,
    PromoteTree,
    Proof,
    compute_leaf_hashes,
    compute_promote_root,
    compute_proof_path,
    compute_proof_position,
    compute_proof_root,
)
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_padding_segment_root,
    compute_revealed_roots,
    compute_segment_proof_from,
    compute_sibling_ranges,
    validate_segment,
)

SEGMENT = 262_144


def segments_of(data: bytes) -> list[SegmentWithProof]:
    tree = FileTree.from_bytes(data)
    out = []
    for i in range(tree.num_segments):
        chunk = data[i * SEGMENT : (i + 1) * SEGMENT]
        chunk += bytes(-len(chunk) % 256)
        out.append(SegmentWithProof(tree.root, chunk, i, tree.proof(i), len(data)))
    return out


@given(st.integers(1, 5000), st.data())
def test_proof_path_is_the_inverse_of_proof_position(n_leaves: int, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, n_leaves - 1))
    path = compute_proof_path(position, n_leaves)
    assert compute_proof_position(path, n_leaves) == position
    assert path == (PromoteTree([bytes(32)] * n_leaves).proof(position).path if n_leaves > 1 else ())


@settings(max_examples=60)
@given(st.integers(1, 300 * SEGMENT), st.data())
def test_a_segment_proof_assembled_from_a_neighbour_is_the_real_proof_or_refused(size: int, data: st.DataObject) -> None:
    """Repair proves one rebuilt segment from its partner's proof: the partner (index ^ 1, or
    index - 1 for the last segment) always suffices, and no neighbour ever yields a wrong proof."""
    n_data, n_proof = compute_segment_count(size), compute_proof_segment_count(size)
    leaves = [keccak256(i.to_bytes(8, "big") + size.to_bytes(8, "big")) for i in range(n_data)]
    leaves += [compute_padding_segment_root(size, i) for i in range(n_data, n_proof)]
    tree = PromoteTree(leaves)
    index = data.draw(st.integers(0, n_data - 1))
    partner = index ^ 1 if index ^ 1 < n_data else index - 1
    neighbour = data.draw(st.integers(0, n_data - 1))
    if n_data == 1:
        assert compute_segment_proof_from(size, tree.root, index, leaves[index], None) == tree.proof(index)
        return
    assert compute_segment_proof_from(size, tree.root, index, leaves[index], tree.proof(partner)) == tree.proof(index)
    try:
        derived = compute_segment_proof_from(size, tree.root, index, leaves[index], tree.proof(neighbour))
    except InvalidProof:
        return
    assert derived == tree.proof(index)


@settings(max_examples=60)
@given(st.integers(2 * SEGMENT + 1, 300 * SEGMENT), st.data())
def test_a_segment_whose_partner_is_lost_is_proven_from_the_partners_root_and_a_cousins_proof(
        size: int, data: st.DataObject) -> None:
    """Repair with the partner lost too: the partner's rebuilt root plus the proof of any segment
    in the pair's sibling subtree give the real proof."""
    n_data, n_proof = compute_segment_count(size), compute_proof_segment_count(size)
    leaves = [keccak256(i.to_bytes(8, "big") + size.to_bytes(8, "big")) for i in range(n_data)]
    leaves += [compute_padding_segment_root(size, i) for i in range(n_data, n_proof)]
    tree = PromoteTree(leaves)
    index = data.draw(st.integers(0, n_data - 1))
    known: dict[tuple[int, int], bytes] = {}
    for lo, hi in compute_sibling_ranges(compute_proof_path(index, n_proof), n_proof):
        if (lo, hi) in known or lo >= n_data:
            continue
        if hi - lo == 1:
            known[(lo, hi)] = leaves[lo]  # rebuilt, not fetched
        else:
            cousin = data.draw(st.integers(lo, min(hi, n_data) - 1))
            known.update(compute_revealed_roots(tree.proof(cousin), n_proof))
    assert compute_segment_proof_from(size, tree.root, index, leaves[index], None, known) == tree.proof(index)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5 * SEGMENT), st.data())
def test_every_honest_segment_validates_and_any_flipped_byte_is_rejected(size: int, data: st.DataObject) -> None:
    content = bytes((i * 31 + size) % 256 for i in range(size))
    segments = segments_of(content)
    for segment in segments:
        validate_segment(segment, segments[0].root, size)
    victim = data.draw(st.sampled_from(segments))
    position = data.draw(st.integers(0, len(victim.data) - 1))
    flipped = bytearray(victim.data)
    flipped[position] ^= 1
    with pytest.raises(InvalidSegment):
        validate_segment(SegmentWithProof(victim.root, bytes(flipped), victim.index, victim.proof, size))


def test_segment_json_round_trips_and_rejects_malformed_fields() -> None:
    segment = segments_of(b"abc" * 1000)[0]
    assert SegmentWithProof.from_json(segment.to_json()) == segment
    for bad in ({}, {**segment.to_json(), "data": "***"}, {**segment.to_json(), "index": -1},
                {**segment.to_json(), "fileSize": "10"}, {**segment.to_json(), "root": "0x12"}, "x"):
        with pytest.raises(InvalidSegment):
            SegmentWithProof.from_json(bad)


def test_rear_padding_sibling_must_be_the_zero_root() -> None:
    size = 16 * SEGMENT + 1  # 16385 sectors -> padded to 18432: 17 data segments + 1 of padding
    content = bytes(range(256)) * (size // 256) + b"\x01"
    segment = segments_of(content)[16]
    ranges = compute_sibling_ranges(segment.proof.path, 18)
    assert (17, 18) in ranges
    slot = ranges.index((17, 18))
    lemma = list(segment.proof.lemma)
    lemma[slot + 1] = keccak256(b"not zero")
    forged_root = compute_proof_root(Proof(tuple(lemma), segment.proof.path))
    lemma[-1] = forged_root
    forged = SegmentWithProof(forged_root, segment.data, 16, Proof(tuple(lemma), segment.proof.path), size)
    with pytest.raises(InvalidSegment, match="rear padding"):
        validate_segment(forged)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=4), st.data())
def test_flow_proofs_prove_every_sector_under_the_flow_root(sizes: list[int], data: st.DataObject) -> None:
    files: dict[int, list[bytes]] = {}
    submissions = []
    for seq, sectors in enumerate(sizes):
        leaves = [keccak256(bytes([seq, i % 256, i // 256])) for i in range(sectors)]
        heights = compute_node_heights(sectors)
        padded = leaves + [ZERO_HASHES[0]] * (sum(1 << h for h in heights) - sectors)
        nodes, offset = [], 0
        for h in heights:
            nodes.append(SubmissionNode(compute_promote_root(padded[offset : offset + (1 << h)]), h))
            offset += 1 << h
        files[seq] = padded
        submissions.append((seq, Submission(sectors * 256, b"", tuple(nodes))))
    items = compute_flow_items(submissions)
    tree = FlowTree()
    flat: list[bytes] = [bytes(32)]
    starts = {}
    for seq, submission in submissions:
        placed = tree.append_submission(submission)
        flat += [ZERO_HASHES[0]] * (placed.start - len(flat))
        starts[seq] = placed.start
        flat += files[seq]
    assert compute_flow_root(flat) == tree.root

    def inner(item: FlowItem, position: int, height: int) -> bytes:
        assert item.seq is not None
        first = position - starts[item.seq]
        return compute_promote_root(files[item.seq][first : first + (1 << height)])

    sector = data.draw(st.integers(0, len(flat) - 1))
    proof = compute_flow_proof(items, sector, inner)
    assert proof.root == tree.root == compute_proof_root(proof)
    assert proof.leaf == flat[sector]


def test_cache_is_bounded_per_file_and_in_total_and_expires() -> None:
    now = [0.0]
    cache = UploadCache(max_file_bytes=1000, max_total_bytes=600, ttl_s=10, clock=lambda: now[0])
    with pytest.raises(CacheFull, match="too large to cache"):
        cache.put(b"a" * 32, 1001, 0, b"r" * 32, b"x" * 256)
    assert cache.put(b"a" * 32, 900, 0, b"r" * 32, b"x" * 512)
    assert not cache.put(b"a" * 32, 900, 0, b"r" * 32, b"x" * 512), "duplicates are not cached twice"
    with pytest.raises(CacheFull, match="full"):
        cache.put(b"b" * 32, 900, 0, b"r" * 32, b"x" * 256)
    now[0] = 11
    assert not cache.has(b"a" * 32, 900), "expired entries are evicted"
    assert cache.put(b"b" * 32, 900, 0, b"r" * 32, b"x" * 256)
    popped = cache.pop(b"b" * 32, 900)
    assert popped is not None and list(popped.segments) == [0]


def test_leaf_hashes_zero_pad_the_last_sector() -> None:
    assert compute_leaf_hashes(b"\x01") == [keccak256(b"\x01" + bytes(255))]
