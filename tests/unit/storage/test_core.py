"""The storage log's pure rules: vectors from 0G and properties of every rule."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.core.hashing import keccak256
from zgos.storage.hasher import build_file_tree
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import (
    FlowTree,
    InvalidSubmission,
    Submission,
    SubmissionNode,
    compute_data_root,
    compute_fee,
    compute_flow_placement,
    compute_flow_root,
    compute_node_heights,
    compute_padded_sectors,
    compute_pricing_chunks,
    compute_submission_digest,
)
from zgos.storage.spec.merkle import (
    SECTORS_PER_SEGMENT,
    ZERO_HASHES,
    InvalidProof,
    PromoteTree,
    Proof,
    compute_leaf_hashes,
    compute_promote_proof,
    compute_promote_root,
    compute_proof_position,
    validate_proof,
)

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "unit" / "storage" / "vectors-0g-ts-sdk.json"

# storage.md §1.6: data byte i = (7*i+3) % 251
SPEC_VECTORS = [
    (1, "456984731866bd0928c2a0efc98f95f88930b7fadef782801f1de640cf131a21", [0]),
    (300, "d35efac722501ca55bba04e695e5ede629d49100f09333d84f2a22ea7db2f9c2", [1]),
    (4096, "4b494558c496c76b8aad72b6b7f6be3177497c036d2c5777144acceb0b7db3a3", [4]),
    (25605, "fc7a625c4e3fab798c93b1e1b7055aa4c210de20824ed7be55441a6f2b5bdb58", [6, 5, 3]),
    (786449, "66d63f8c87da8ffd9fb15702134dffc83f275f5f6b6401d1fd6809015afde7ef", [11, 10, 8]),
]


def spec_bytes(size: int) -> bytes:
    return bytes((7 * i + 3) % 251 for i in range(size))


def leaves(n: int) -> list[bytes]:
    return [keccak256(f"chunk data - {i}".encode()) for i in range(n)]


def test_zero_hashes_match_the_reference() -> None:
    assert ZERO_HASHES[0].hex() == "d397b3b043d87fcd6fad1291ff0bfd16401c274896d8c63a923727f077b8e0b5"
    assert ZERO_HASHES[1].hex().startswith("f73e6947")


@pytest.mark.parametrize(("size", "root", "heights"), SPEC_VECTORS)
def test_data_root_matches_storage_md_vectors(size: int, root: str, heights: list[int]) -> None:
    tree = FileTree.from_bytes(spec_bytes(size))
    assert tree.root.hex() == root
    assert tree.submission().heights == heights
    tree.submission().validate()


def test_data_root_matches_0g_ts_sdk_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())["vectors"]
    for vector in vectors:
        data = bytes((i * 31 + 7) % 256 for i in range(vector["size"]))
        tree = FileTree.from_bytes(data)
        assert "0x" + tree.root.hex() == vector["root"]
        expected = [(n["root"], n["height"]) for n in vector["submission"]["nodes"]]
        assert [("0x" + n.root.hex(), n.height) for n in tree.nodes] == expected
        assert compute_padded_sectors(vector["chunks"]) == vector["paddedChunks"]


def test_promote_root_matches_go_tree_vectors() -> None:
    assert compute_promote_root(leaves(5)).hex().startswith("2dea03c6")
    assert compute_promote_root(leaves(6)).hex().startswith("318c9200")
    assert compute_promote_root(leaves(7)).hex().startswith("ca80116f")


@given(st.integers(1, 300))
def test_promote_tree_levels_agree_with_the_recursive_definition(n: int) -> None:
    items = leaves(n)
    assert PromoteTree(items).root == compute_promote_root(items)


@given(st.integers(1, 80), st.data())
def test_proofs_verify_only_at_their_own_position(n: int, data: st.DataObject) -> None:
    items = leaves(n)
    tree = PromoteTree(items)
    index = data.draw(st.integers(0, n - 1))
    proof = tree.proof(index)
    assert proof == compute_promote_proof(items, index)
    assert compute_proof_position(proof.path, n) == index
    validate_proof(proof, tree.root, items[index], index, n)
    other = data.draw(st.integers(0, n - 1))
    if other != index:
        with pytest.raises(InvalidProof):
            validate_proof(proof, tree.root, items[index], other, n)


@given(st.integers(2, 64), st.data())
def test_tampered_proofs_are_rejected(n: int, data: st.DataObject) -> None:
    items = leaves(n)
    tree = PromoteTree(items)
    index = data.draw(st.integers(0, n - 1))
    proof = tree.proof(index)
    slot = data.draw(st.integers(1, len(proof.lemma) - 2)) if len(proof.lemma) > 2 else None
    if slot is not None:
        lemma = list(proof.lemma)
        lemma[slot] = keccak256(lemma[slot])
        with pytest.raises(InvalidProof):
            validate_proof(Proof(tuple(lemma), proof.path), tree.root, items[index], index, n)
    flipped = Proof(proof.lemma, tuple(not p for p in proof.path))
    with pytest.raises(InvalidProof):
        validate_proof(flipped, tree.root, items[index], index, n)


def test_proof_json_round_trips_and_rejects_garbage() -> None:
    proof = PromoteTree(leaves(5)).proof(3)
    assert Proof.from_json(proof.to_json()) == proof
    for bad in (None, [], {"lemma": "x", "path": []}, {"lemma": ["0x12"], "path": []},
                {"lemma": [], "path": [1]}):
        with pytest.raises(InvalidProof):
            Proof.from_json(bad)


@given(st.integers(1, 1 << 40))
def test_padding_is_minimal_and_under_an_eighth(sectors: int) -> None:
    padded = compute_padded_sectors(sectors)
    assert sectors <= padded
    assert padded - sectors < max(1, sectors // 8) or padded == sectors
    heights = compute_node_heights(sectors)
    assert sum(1 << h for h in heights) == padded
    assert len(heights) <= 4 and heights[0] - heights[-1] < 4


@given(st.integers(1, 1 << 36))
def test_every_honest_submission_is_valid_and_others_are_not(size: int) -> None:
    sectors = -(-size // 256)
    nodes = tuple(SubmissionNode(bytes(32), h) for h in compute_node_heights(sectors))
    Submission(size, b"", nodes).validate()
    bigger = tuple(SubmissionNode(bytes(32), h) for h in compute_node_heights(sectors * 4))
    if compute_padded_sectors(sectors * 4) > compute_padded_sectors(sectors) * 2:
        with pytest.raises(InvalidSubmission):
            Submission(size, b"", bigger).validate()


def test_invalid_submissions_are_named() -> None:
    node = SubmissionNode(bytes(32), 4)
    for submission, words in [
        (Submission(10, b"", ()), "at least one node"),
        (Submission(10, b"", (node, node)), "strictly decreasing"),
        (Submission(4097, b"", (node,)), "exceeds"),
        (Submission(10, b"", (node,)), "smaller padding"),
        (Submission(10, b"", (SubmissionNode(bytes(32), 64),)), "not below"),
        (Submission(10, b"", tuple(SubmissionNode(bytes(32), h) for h in (8, 6, 4))), "span"),
    ]:
        with pytest.raises(InvalidSubmission, match=words):
            submission.validate()


@given(st.binary(min_size=1, max_size=3000))
def test_data_root_is_the_fold_of_node_roots(data: bytes) -> None:
    tree = FileTree.from_bytes(data)
    assert compute_data_root(tree.nodes) == tree.root
    padded = compute_leaf_hashes(data)
    padded += [ZERO_HASHES[0]] * (compute_padded_sectors(len(padded)) - len(padded))
    assert compute_promote_root(padded) == tree.root


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3 * 1024 * 256 + 5000))
def test_segment_tree_root_equals_sector_tree_root(size: int) -> None:
    data = bytes((i * 13 + 1) % 256 for i in range(size))
    tree = FileTree.from_bytes(data)
    padded = compute_leaf_hashes(data)
    padded += [ZERO_HASHES[0]] * (compute_padded_sectors(len(padded)) - len(padded))
    assert compute_promote_root(padded) == tree.root


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 20 * 1024 * 1024))
def test_parallel_file_tree_equals_the_plain_one(tmp_path_factory: pytest.TempPathFactory, size: int) -> None:
    path = tmp_path_factory.mktemp("tree") / "file"
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    path.write_bytes(data)
    fast, plain = build_file_tree(path, workers=2), FileTree.from_bytes(data)
    assert (fast.root, fast.nodes, fast.segment_roots) == (plain.root, plain.nodes, plain.segment_roots)
    assert fast.proof(fast.num_segments - 1) == plain.proof(plain.num_segments - 1)


def test_submission_digest_is_keccak_of_node_roots() -> None:
    nodes = (SubmissionNode(b"\x01" * 32, 5), SubmissionNode(b"\x02" * 32, 3))
    assert compute_submission_digest(Submission(1, b"", nodes)) == keccak256(b"\x01" * 32 + b"\x02" * 32)
    assert compute_fee(Submission(1, b"", nodes), 7) == (32 + 8) * 7


@given(st.integers(1, 1 << 30), st.lists(st.integers(1, 5000), min_size=1, max_size=6))
def test_placement_keeps_files_inside_a_segment_or_segment_aligned(start: int, sizes: list[int]) -> None:
    length = start
    for sectors in sizes:
        heights = compute_node_heights(sectors)
        placed = compute_flow_placement(length, heights)
        total = sum(1 << h for h in heights)
        assert placed.start >= length and placed.end == placed.start + total
        assert placed.start % (1 << heights[0]) == 0
        same_segment = placed.start // SECTORS_PER_SEGMENT == (placed.end - 1) // SECTORS_PER_SEGMENT
        assert same_segment or placed.start % SECTORS_PER_SEGMENT == 0
        length = placed.end


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=5))
def test_incremental_flow_root_equals_the_complete_tree(sizes: list[int]) -> None:
    flow = FlowTree()
    sector_leaves = [bytes(32)]
    for i, sectors in enumerate(sizes):
        nodes = tuple(SubmissionNode(keccak256(bytes([i, h])), h) for h in compute_node_heights(sectors))
        before = flow.length
        placed = flow.append_submission(Submission(sectors * 256, b"", nodes))
        sector_leaves += [ZERO_HASHES[0]] * (placed.start - before)
        for node in nodes:
            # a node is an opaque subtree: expand it as a leaf of its own height
            sector_leaves += [("node", node.root, node.height)] * (1 << node.height)  # type: ignore[list-item]
        assert flow.length == len(sector_leaves)
    assert flow.root == _reference_flow_root(sector_leaves)


def _reference_flow_root(items: list[object]) -> bytes:
    """Complete-tree root where runs of an opaque node collapse to its root at its height."""
    size = 1
    while size < len(items):
        size *= 2
    level: list[object] = items + [ZERO_HASHES[0]] * (size - len(items))
    height = 0
    while len(level) > 1:
        nxt: list[object] = []
        for a, b in zip(level[::2], level[1::2], strict=True):
            if isinstance(a, tuple) and a == b and a[2] > height:
                nxt.append(a)
                continue
            left = a[1] if isinstance(a, tuple) else a
            right = b[1] if isinstance(b, tuple) else b
            nxt.append(keccak256(left + right))  # type: ignore[operator]
        level = nxt
        height += 1
    top = level[0]
    return top[1] if isinstance(top, tuple) else top  # type: ignore[return-value]


def test_flow_root_of_plain_leaves() -> None:
    flow = FlowTree()
    assert flow.root == bytes(32)
    flow.append_node(keccak256(b"a"), 0)
    assert flow.root == compute_flow_root([bytes(32), keccak256(b"a")])


@given(st.integers(0, 1 << 36), st.integers(1, 1 << 27))
def test_pricing_chunks_cover_the_range(start: int, sectors: int) -> None:
    parts = compute_pricing_chunks(start, sectors)
    assert sum(n for _, n in parts) == sectors
    assert parts[0][0] == start // (1 << 25)


def test_native_segment_roots_equal_the_python_definition(native_lanes: int) -> None:
    """Every native Keccak (XKCP's one message at a time, 4 in AVX2 lanes, 8 in AVX-512 lanes)
    gives the Python definition's roots: leaves take two permutations, parents one."""
    from zgos.storage import fasthash
    from zgos.storage.spec.merkle import compute_segment_root

    data = os.urandom(3 * 262_144)
    roots = fasthash.full_segment_roots(data)
    assert roots == [compute_segment_root(data[i : i + 262_144]) for i in range(0, len(data), 262_144)]
    assert fasthash.segment_root(data[:262_144]) == roots[0]
    assert fasthash.segment_root(data[:1000], 8) == compute_segment_root(data[:1000], 8)
