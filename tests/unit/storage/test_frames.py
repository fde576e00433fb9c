"""Segment frames (``zgos.storage.spec.frames``): what is encoded decodes to the same proof and
header, and malformed framing is refused with a reason, never accepted or crashed on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.storage.spec.frames import (
    FRAME_HEADER,
    MAX_FRAMES_PER_REQUEST,
    MAX_LEMMA_ITEMS,
    InvalidFrame,
    compute_frame_indexes,
    decode_frame_header,
    decode_proof,
    encode_absent,
    encode_frame_header,
    encode_proof,
)
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, Proof

hashes = st.binary(min_size=32, max_size=32)
proofs = st.integers(0, MAX_LEMMA_ITEMS - 2).flatmap(
    lambda depth: st.builds(Proof, st.lists(hashes, min_size=depth + 2, max_size=depth + 2).map(tuple),
                            st.lists(st.booleans(), min_size=depth, max_size=depth).map(tuple)))


@given(proofs, st.integers(0, 2**64 - 1), st.integers(1, BYTES_PER_SEGMENT))
def test_a_frame_decodes_to_what_was_encoded(proof: Proof, index: int, data_bytes: int) -> None:
    blob = encode_proof(proof)
    frame = encode_frame_header(index, blob, data_bytes)
    header = decode_frame_header(frame[: FRAME_HEADER.size], index)
    assert (header.index, header.proof_bytes, header.data_bytes, header.absent) == (index, len(blob), data_bytes, False)
    assert decode_proof(frame[FRAME_HEADER.size :]) == proof


def test_an_absent_segment_is_an_empty_frame() -> None:
    assert decode_frame_header(encode_absent(7), 7).absent


@given(proofs, st.data())
def test_a_cut_or_padded_proof_is_refused(proof: Proof, data: st.DataObject) -> None:
    blob = encode_proof(proof)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(InvalidFrame):
        decode_proof(blob[:cut])
    with pytest.raises(InvalidFrame):
        decode_proof(blob + b"\x00")


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_proof_or_a_named_refusal(blob: bytes) -> None:
    try:
        proof = decode_proof(blob)
    except InvalidFrame as exc:
        assert exc.message
    else:
        assert encode_proof(proof) == blob


def test_bad_headers_are_refused() -> None:
    proof = encode_proof(Proof((b"\x01" * 32,), ()))
    with pytest.raises(InvalidFrame, match="expected segment 3, got 4"):
        decode_frame_header(encode_frame_header(4, proof, 256)[: FRAME_HEADER.size], 3)
    with pytest.raises(InvalidFrame, match="too large"):
        decode_frame_header(FRAME_HEADER.pack(0, len(proof), BYTES_PER_SEGMENT + 1), 0)
    with pytest.raises(InvalidFrame, match="too large"):
        decode_frame_header(FRAME_HEADER.pack(0, 1 << 20, 256), 0)
    with pytest.raises(InvalidFrame, match="data without a proof"):
        decode_frame_header(FRAME_HEADER.pack(0, 0, 256), 0)
    with pytest.raises(InvalidFrame, match="0 or 1"):
        decode_proof(bytes([1, 1]) + b"\x01" * 32 + b"\x02")


def test_a_request_names_a_bounded_run_of_segments() -> None:
    assert list(compute_frame_indexes(3, 4, 2)) == [3, 5, 7, 9]
    for first, count, step in ((0, 0, 1), (0, MAX_FRAMES_PER_REQUEST + 1, 1), (0, 1, 0), (-1, 1, 1)):
        with pytest.raises(InvalidFrame):
            compute_frame_indexes(first, count, step)
