"""The native segment-proof check agrees with the reference (``segment.validate_segment``):
it proves exactly the honest segments it is meant to decide (full, not the file's last, no
rear-padding sibling), sends those others to the reference, and never proves a segment the
reference rejects, whatever byte of the data, proof, position or root an attacker changes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.storage import fasthash
from zgos.storage.spec.flow import compute_proof_segment_count, compute_segment_count
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, PromoteTree, Proof, compute_segment_root
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_padding_segment_root,
    compute_sibling_ranges,
    validate_segment,
)

pytestmark = pytest.mark.skipif(fasthash.native is None, reason="the native extension is not built")

MUTATIONS = ("none", "data", "lemma", "sibling", "path", "position", "short", "root")


def _reference_accepts(segment: SegmentWithProof, root: bytes, size: int) -> bool:
    try:
        validate_segment(segment, root, size, compute_segment_root)  # pure Python throughout
    except InvalidSegment:
        return False
    return True


def _mutated(proof: Proof, data: bytes, index: int, root: bytes, how: str, at: int) -> tuple[Proof, bytes, int, bytes]:
    lemma, path = list(proof.lemma), list(proof.path)
    if how == "data":
        flipped = bytearray(data)
        flipped[at % len(data)] ^= 0x80
        data = bytes(flipped)
    elif how in ("lemma", "sibling"):  # a sibling is not the leaf or the root: only the fold finds it
        slot = at % len(lemma) if how == "lemma" else 1 + at % (len(lemma) - 2)
        lemma[slot] = bytes(byte ^ (i == at % 32) for i, byte in enumerate(lemma[slot]))
    elif how == "path":
        path[at % len(path)] = not path[at % len(path)]
    elif how == "position":
        index = index + 1 if at % 2 else max(0, index - 1)
    elif how == "short":
        del lemma[1 + at % (len(lemma) - 2)]
        del path[at % len(path)]
    elif how == "root":
        root = hashlib.sha3_256(root).digest()
    return Proof(tuple(lemma), tuple(path)), data, index, root


@settings(max_examples=120)
@given(n_data=st.integers(2, 70), tail=st.integers(1, BYTES_PER_SEGMENT), data=st.data())
def test_the_native_check_proves_exactly_what_it_should_and_nothing_the_reference_rejects(
        n_data: int, tail: int, data: st.DataObject) -> None:
    size = (n_data - 1) * BYTES_PER_SEGMENT + tail
    n_proof = compute_proof_segment_count(size)
    assert compute_segment_count(size) == n_data
    index = data.draw(st.integers(0, n_data - 2), label="a full segment")
    content = data.draw(st.binary(min_size=32, max_size=32), label="seed") * (BYTES_PER_SEGMENT // 32)
    leaves = [hashlib.sha3_256(i.to_bytes(8, "big")).digest() for i in range(n_data)]
    leaves[index] = fasthash.segment_root(content)
    leaves += [compute_padding_segment_root(size, i) for i in range(n_data, n_proof)]
    tree = PromoteTree(leaves)
    how = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    proof, segment_data, position, root = _mutated(tree.proof(index), content, index, tree.root, how,
                                                   data.draw(st.integers(0, 1 << 20), label="where"))
    native = fasthash.segment_proven(segment_data, proof, position, root, size)
    reference = _reference_accepts(SegmentWithProof(root, segment_data, position, proof, size), root, size)
    padding_sibling = any(lo >= n_data for lo, _ in compute_sibling_ranges(tree.proof(index).path, n_proof))
    assert native == (reference and not padding_sibling)
    if how == "none":
        assert reference


def test_the_last_segment_and_a_malformed_call_are_left_to_the_reference() -> None:
    size = 3 * BYTES_PER_SEGMENT
    content = bytes(range(256)) * (BYTES_PER_SEGMENT // 256)
    assert compute_proof_segment_count(size) == 3
    tree = PromoteTree([fasthash.segment_root(content)] * 3)
    assert fasthash.segment_proven(content, tree.proof(1), 1, tree.root, size)
    assert not fasthash.segment_proven(content, tree.proof(2), 2, tree.root, size), "the last: the reference's"
    assert not fasthash.segment_proven(content[:-1], tree.proof(1), 1, tree.root, size), "not a whole segment"
    assert not fasthash.segment_proven(content, tree.proof(1), 1, tree.root[:31], size), "not a 32-byte root"
    assert not fasthash.segment_proven(content, tree.proof(1), 1, tree.root, 0), "no such file size"
