"""Segment frames: many segments and their proofs in one raw byte stream (issue 20).

0G moves one segment per JSON-RPC call, base64 inside JSON (storage.md §5.4). zgos's own
client sends a zgos node runs of segments at once (``PUT /zgos/v1/segments``, the file's root
and size in headers) and asks for them the same way (``GET``), as a stream of frames, so a
transfer costs a few requests and no text encoding:

    frame  := index (u64) ‖ P (u32) ‖ D (u32) ‖ proof (P bytes) ‖ data (D bytes)
    proof  := L (u8) ‖ K (u8) ‖ lemma (L hashes of 32 bytes) ‖ path (K bytes, each 0 or 1)

Integers are little-endian. ``D = 0`` says the node does not hold that segment (the client
fetches it elsewhere). The proof is 0G's ``FileProof`` (``merkle.Proof``) in binary. Decoding
checks only the framing and its bounds; the receiver still checks every segment against the
file's root with ``segment.validate_segment`` before it trusts a byte. Pure: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zgos.core.errors import ZgError
from zgos.core.hashing import HASH_BYTES
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, MAX_TREE_HEIGHT, Proof

FRAME_HEADER = struct.Struct("<QII")  # index, proof bytes, data bytes
PROOF_HEADER = struct.Struct("<BB")  # lemma items, path flags
MAX_LEMMA_ITEMS = MAX_TREE_HEIGHT + 2  # leaf, a sibling per level, root
MAX_PROOF_BYTES = PROOF_HEADER.size + MAX_LEMMA_ITEMS * (HASH_BYTES + 1)
MAX_FRAMES_PER_REQUEST = 64  # 16 MiB of segments per request
MAX_FRAMES_BODY_BYTES = MAX_FRAMES_PER_REQUEST * (FRAME_HEADER.size + MAX_PROOF_BYTES + BYTES_PER_SEGMENT)


class InvalidFrame(ZgError):
    """A frame that breaks the framing rules; the message says which."""


@dataclass(frozen=True)
class FrameHeader:
    index: int
    proof_bytes: int
    data_bytes: int

    @property
    def absent(self) -> bool:
        """The node does not hold this segment."""
        return self.data_bytes == 0


def encode_proof(proof: Proof) -> bytes:
    """``proof`` in the frame's binary form."""
    if len(proof.lemma) > MAX_LEMMA_ITEMS or len(proof.path) > MAX_LEMMA_ITEMS:
        raise InvalidFrame(f"a proof has at most {MAX_LEMMA_ITEMS} lemma items")
    flags = bytes(int(step) for step in proof.path)
    return PROOF_HEADER.pack(len(proof.lemma), len(proof.path)) + b"".join(proof.lemma) + flags


def decode_proof(blob: bytes) -> Proof:
    """The proof in ``blob``; ``InvalidFrame`` if its lengths or flags are malformed."""
    if len(blob) < PROOF_HEADER.size:
        raise InvalidFrame("a proof is shorter than its header")
    items, steps = PROOF_HEADER.unpack_from(blob)
    if items > MAX_LEMMA_ITEMS or steps > MAX_LEMMA_ITEMS:
        raise InvalidFrame(f"a proof has at most {MAX_LEMMA_ITEMS} lemma items")
    if len(blob) != PROOF_HEADER.size + items * HASH_BYTES + steps:
        raise InvalidFrame("a proof's length does not match its header")
    start = PROOF_HEADER.size
    lemma = tuple(blob[start + i * HASH_BYTES : start + (i + 1) * HASH_BYTES] for i in range(items))
    flags = blob[start + items * HASH_BYTES :]
    if any(flag > 1 for flag in flags):
        raise InvalidFrame("a proof's path flags must be 0 or 1")
    return Proof(lemma, tuple(flag == 1 for flag in flags))


def encode_frame_header(index: int, proof: bytes, data_bytes: int) -> bytes:
    """The header and proof of segment ``index``; its ``data_bytes`` of data follow them."""
    return FRAME_HEADER.pack(index, len(proof), data_bytes) + proof


def encode_absent(index: int) -> bytes:
    """The frame saying segment ``index`` is not held here."""
    return FRAME_HEADER.pack(index, 0, 0)


def decode_frame_header(blob: bytes, expected_index: int | None = None) -> FrameHeader:
    """The header in ``blob`` (``FRAME_HEADER.size`` bytes), which must be segment
    ``expected_index``'s when one is given; ``InvalidFrame`` if it is another's or its lengths
    are out of bounds."""
    index, proof_bytes, data_bytes = FRAME_HEADER.unpack(blob)
    if expected_index is not None and index != expected_index:
        raise InvalidFrame(f"expected segment {expected_index}, got {index}")
    if proof_bytes > MAX_PROOF_BYTES or data_bytes > BYTES_PER_SEGMENT:
        raise InvalidFrame(f"segment {index}'s frame is too large ({proof_bytes} proof, {data_bytes} data bytes)")
    if (data_bytes == 0) != (proof_bytes == 0):
        raise InvalidFrame(f"segment {index}'s frame has data without a proof, or a proof without data")
    return FrameHeader(index, proof_bytes, data_bytes)


def compute_frame_indexes(first: int, count: int, step: int) -> range:
    """The segments a request for ``count`` segments from ``first``, ``step`` apart, names."""
    if not 0 < count <= MAX_FRAMES_PER_REQUEST:
        raise InvalidFrame(f"count must be 1..{MAX_FRAMES_PER_REQUEST}, got {count}")
    if first < 0 or step < 1:
        raise InvalidFrame("first must be >= 0 and step >= 1")
    return range(first, first + count * step, step)
