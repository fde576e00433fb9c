"""Segments on the wire: 0G's ``SegmentWithProof`` and the checks every receiver applies.

A segment is the unit of upload and download: up to 1024 sectors (256 KiB) of a file, sent
without flow padding (the last one carries only the file's remaining sectors, its last sector
zero-padded), with a proof from its segment root to the file's data root. The receiver
recomputes the segment root with zero-sector leaves up to the segment's flow-padded size and
checks the proof at the segment's position; a proof sibling that covers only rear padding must
also be the canonical zero root (storage.md §4.3 step 3, §5.4 step 3). Both storage nodes
(uploads) and clients (downloads) call ``validate_segment``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256_pair
from zgos.storage.spec.flow import (
    compute_padded_segment_sectors,
    compute_proof_segment_count,
    compute_segment_count,
    compute_segment_data_sectors,
)
from zgos.storage.spec.merkle import (
    BYTES_PER_SECTOR,
    SECTORS_PER_SEGMENT,
    ZERO_HASHES,
    ZERO_SECTOR_HASH,
    InvalidProof,
    Proof,
    compute_promote_root,
    compute_promote_split,
    compute_proof_path,
    compute_proof_position,
    compute_segment_root,
    parse_hash,
    validate_proof,
)

MAX_FILE_SIZE = 1 << 50  # bytes; far above any real file, keeps arithmetic bounded


class InvalidSegment(ZgError):
    """A segment fails a check; the message names which one."""


# The JSON-RPC error code of a segment upload refused because its file is already finalized
# (every segment stored): the uploader's work is done, it is not a failure. Other refusals
# keep the generic server error code.
ALREADY_FINALIZED_ERROR_CODE = -32001

@dataclass(frozen=True)
class SegmentWithProof:
    """0G's ``SegmentWithProof``: ``{root, data (base64), index, proof, fileSize}``."""

    root: bytes
    data: bytes
    index: int
    proof: Proof
    file_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "root": "0x" + self.root.hex(),
            "data": base64.b64encode(self.data).decode(),
            "index": self.index,
            "proof": self.proof.to_json(),
            "fileSize": self.file_size,
        }

    @classmethod
    def from_json(cls, value: object) -> SegmentWithProof:
        """Parse the JSON shape; raise ``InvalidSegment`` naming the malformed field."""
        if not isinstance(value, dict):
            raise InvalidSegment("segment must be an object {root, data, index, proof, fileSize}")
        try:
            root = parse_hash(value.get("root"), "root")
            proof = Proof.from_json(value.get("proof"))
        except InvalidProof as exc:
            raise InvalidSegment(f"malformed segment: {exc.message}") from None
        data = value.get("data")
        if not isinstance(data, str):
            raise InvalidSegment("segment data must be a base64 string")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSegment("segment data is not valid base64") from None
        index, size = value.get("index"), value.get("fileSize")
        for name, number in (("index", index), ("fileSize", size)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise InvalidSegment(f"segment {name} must be a non-negative integer")
        assert isinstance(index, int) and isinstance(size, int)
        return cls(root, raw, index, proof, size)


def compute_segment_byte_length(file_size: int, index: int) -> int:
    """Exact byte length of data segment ``index`` on the wire."""
    return compute_segment_data_sectors(file_size, index) * BYTES_PER_SECTOR


def compute_padding_segment_root(file_size: int, index: int) -> bytes:
    """Root of proof segment ``index`` when it lies wholly in flow padding."""
    sectors = compute_padded_segment_sectors(file_size, index)
    if sectors == SECTORS_PER_SEGMENT:
        return ZERO_HASHES[10]
    return compute_promote_root([ZERO_SECTOR_HASH] * sectors)


def compute_sibling_ranges(path: tuple[bool, ...], n_leaves: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` covered by each proof sibling, bottom-up like the lemma."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, n_leaves
    for is_left in reversed(path):
        if hi - lo <= 1:
            raise InvalidProof("proof path is longer than the tree")
        mid = lo + compute_promote_split(hi - lo)
        if is_left:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def validate_segment(segment: SegmentWithProof, expected_root: bytes | None = None,
                     expected_size: int | None = None,
                     segment_root_fn: Callable[[bytes, int], bytes] = compute_segment_root) -> bytes:
    """Check a segment against its file; return its segment root.

    Raises ``InvalidSegment`` for a wrong root or size (when expected ones are given), an index
    beyond the file, a wrong data length, a proof that fails (leaf, root, position, siblings),
    or a rear-padding sibling that is not the canonical zero root.
    """
    if expected_root is not None and segment.root != expected_root:
        raise InvalidSegment("segment root does not match the file's data root")
    if expected_size is not None and segment.file_size != expected_size:
        raise InvalidSegment(f"fileSize {segment.file_size} does not match the file's size {expected_size}")
    if not 0 < segment.file_size <= MAX_FILE_SIZE:
        raise InvalidSegment(f"fileSize {segment.file_size} is out of range")
    if not segment.data or len(segment.data) % BYTES_PER_SECTOR:
        raise InvalidSegment(f"segment data length {len(segment.data)} is not a positive multiple of 256")
    n_data = compute_segment_count(segment.file_size)
    if segment.index >= n_data:
        raise InvalidSegment(f"segment index {segment.index} is beyond the file's {n_data} segments")
    expected_length = compute_segment_byte_length(segment.file_size, segment.index)
    if len(segment.data) != expected_length:
        raise InvalidSegment(f"segment {segment.index} must be {expected_length} bytes, got {len(segment.data)}")
    padded = compute_padded_segment_sectors(segment.file_size, segment.index)
    segment_root = segment_root_fn(segment.data, padded)
    n_proof = compute_proof_segment_count(segment.file_size)
    try:
        validate_proof(segment.proof, segment.root, segment_root, segment.index, n_proof)
        ranges = compute_sibling_ranges(segment.proof.path, n_proof)
    except InvalidProof as exc:
        raise InvalidSegment(f"invalid proof: {exc.message}") from None
    for (lo, hi), sibling in zip(ranges, segment.proof.siblings, strict=True):
        if lo >= n_data:  # the sibling covers only rear padding: it must be all zeros
            canonical = compute_promote_root([compute_padding_segment_root(segment.file_size, i) for i in range(lo, hi)])
            if sibling != canonical:
                raise InvalidSegment("invalid proof: rear padding sibling is not the zero root")
    return segment_root


def compute_revealed_roots(proof: Proof, n_leaves: int) -> dict[tuple[int, int], bytes]:
    """Every subtree root a proof reveals, keyed by its leaf range ``[lo, hi)``: its leaf, its
    siblings, and the nodes on its path folded from them (the proof must already be valid)."""
    position = compute_proof_position(proof.path, n_leaves)
    lo, hi, node = position, position + 1, proof.leaf
    revealed = {(lo, hi): node}
    for (s_lo, s_hi), sibling, is_left in zip(compute_sibling_ranges(proof.path, n_leaves), proof.siblings,
                                              proof.path, strict=True):
        revealed[(s_lo, s_hi)] = sibling
        node = keccak256_pair(node, sibling) if is_left else keccak256_pair(sibling, node)
        lo, hi = min(lo, s_lo), max(hi, s_hi)
        revealed[(lo, hi)] = node
    return revealed


def compute_segment_proof_from(file_size: int, root: bytes, index: int, leaf: bytes,
                               neighbour: Proof | None,
                               known: Mapping[tuple[int, int], bytes] | None = None) -> Proof:
    """The proof of segment ``index`` (segment root ``leaf``) assembled from a valid proof of
    another segment of the same file, so one rebuilt segment can be proven without the rest.

    Every sibling of ``index`` must be revealed by ``neighbour`` (see
    ``compute_revealed_roots``), be in ``known`` (subtree roots keyed by leaf range, e.g. those
    other proofs reveal, or a rebuilt segment's root), or lie wholly in rear padding. The
    partner's proof (segment ``index ^ 1``, or ``index - 1`` for the file's last segment) reveals
    them all. Raises ``InvalidProof`` when a sibling is unknown. The proof is not checked here:
    the receiver's ``validate_segment`` does that, which also proves the rebuilt data.
    """
    n_proof, n_data = compute_proof_segment_count(file_size), compute_segment_count(file_size)
    revealed = {**(known or {}), **(compute_revealed_roots(neighbour, n_proof) if neighbour is not None else {})}
    path = compute_proof_path(index, n_proof)
    siblings: list[bytes] = []
    for lo, hi in compute_sibling_ranges(path, n_proof):
        if (lo, hi) in revealed:
            siblings.append(revealed[(lo, hi)])
        elif lo >= n_data:
            siblings.append(compute_promote_root([compute_padding_segment_root(file_size, i) for i in range(lo, hi)]))
        else:
            raise InvalidProof(f"the neighbour's proof does not reveal segments {lo}..{hi - 1} for segment {index}")
    if not path:
        return Proof((leaf,), ())
    return Proof((leaf, *siblings, root), path)
