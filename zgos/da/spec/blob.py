"""Blob layout: how a user's bytes become EIP-4844-sized polynomials, cells and a blob id.

The rules (reference: shared/reference/da.md §2.2-2.3 for 0G's packing, §7 for EIP-4844 and
PeerDAS, whose sizes we use):

- A blob holds 1 to ``MAX_BLOB_BYTES`` bytes. It is cut into rows of
  ``BYTES_PER_ROW_PAYLOAD`` (126,976) bytes; the last row is zero-padded.
- Each row becomes one EIP-4844 blob of ``FIELD_ELEMENTS_PER_ROW`` (4096) field elements of
  the BLS12-381 scalar field: each 31-byte chunk is stored big-endian behind a zero byte, so
  every element is < 2^248 < the field modulus (0G packs 31 bytes per element the same way).
- Each row polynomial is extended 2x (PeerDAS, EIP-7594) into ``CELLS_PER_ROW`` (128) cells of
  ``FIELD_ELEMENTS_PER_CELL`` (64) elements, each with a 48-byte KZG proof. Any
  ``CELLS_NEEDED_PER_ROW`` (64) cells of a row recover it. Cell index = column.
- The row commitments (48-byte KZG commitments) form a keccak-256 Merkle tree: leaf =
  ``keccak256(commitment)``, parent = ``keccak256(left || right)``, an odd last node is carried
  up unchanged. ``blob_id = keccak256(submitter || uint64_be(size) || root)``, with the
  submitter's 20-byte address: one 32-byte name that binds who submitted it, the size and every
  row's commitment; the ``DAEntrance`` contract computes it on-chain from ``msg.sender``. Binding
  the submitter means that a front-runner copying a pending submission creates its own blob,
  which it can cancel without touching the original.

This module is pure: no I/O, no cryptography beyond keccak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zgos.core.hashing import keccak256, keccak256_pair

BYTES_PER_FIELD_ELEMENT = 32
USABLE_BYTES_PER_FIELD_ELEMENT = 31
FIELD_ELEMENTS_PER_ROW = 4096
BYTES_PER_ROW = FIELD_ELEMENTS_PER_ROW * BYTES_PER_FIELD_ELEMENT  # 131,072: one EIP-4844 blob
BYTES_PER_ROW_PAYLOAD = FIELD_ELEMENTS_PER_ROW * USABLE_BYTES_PER_FIELD_ELEMENT  # 126,976
CELLS_PER_ROW = 128
CELLS_NEEDED_PER_ROW = CELLS_PER_ROW // 2
FIELD_ELEMENTS_PER_CELL = 64
BYTES_PER_CELL = FIELD_ELEMENTS_PER_CELL * BYTES_PER_FIELD_ELEMENT  # 2,048
BYTES_PER_COMMITMENT = 48
BYTES_PER_PROOF = 48
MAX_ROWS = 256
MAX_BLOB_BYTES = MAX_ROWS * BYTES_PER_ROW_PAYLOAD  # 32,505,856 (= 0G's padded blob size)
SIZE_BYTES = 8
ADDRESS_BYTES = 20


class BlobError(ValueError):
    """Base class of blob layout errors."""


class InvalidBlobSize(BlobError):
    """The payload is empty or larger than ``MAX_BLOB_BYTES``."""


class InvalidRow(BlobError):
    """A row is not a canonical packing of 31-byte chunks (wrong size or a non-zero high byte)."""


class InvalidPadding(BlobError):
    """Bytes after the blob's size in its last row are not zero."""


def validate_blob_size(size: int) -> None:
    """Raise ``InvalidBlobSize`` unless ``1 <= size <= MAX_BLOB_BYTES``."""
    if size <= 0:
        raise InvalidBlobSize("a blob must hold at least 1 byte")
    if size > MAX_BLOB_BYTES:
        raise InvalidBlobSize(
            f"blob of {size:,} bytes exceeds the maximum of {MAX_BLOB_BYTES:,} bytes"
        )


def compute_row_count(size: int) -> int:
    """Number of rows (polynomials) a blob of ``size`` bytes occupies."""
    validate_blob_size(size)
    return -(-size // BYTES_PER_ROW_PAYLOAD)


def pack_rows(data: bytes) -> list[bytes]:
    """Cut ``data`` into rows of ``BYTES_PER_ROW`` bytes (EIP-4844 blobs), zero-padding the end.

    Each 31-byte chunk becomes one 32-byte big-endian field element with a zero high byte.
    Raises ``InvalidBlobSize`` for an empty or oversized payload.
    """
    rows = compute_row_count(len(data))
    padded = np.zeros(rows * BYTES_PER_ROW_PAYLOAD, dtype=np.uint8)
    padded[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    elements = np.zeros((rows * FIELD_ELEMENTS_PER_ROW, BYTES_PER_FIELD_ELEMENT), dtype=np.uint8)
    elements[:, 1:] = padded.reshape(-1, USABLE_BYTES_PER_FIELD_ELEMENT)
    flat = elements.tobytes()
    return [flat[i * BYTES_PER_ROW : (i + 1) * BYTES_PER_ROW] for i in range(rows)]


def unpack_rows(rows: Sequence[bytes], size: int) -> bytes:
    """Inverse of ``pack_rows``: the first ``size`` payload bytes of ``rows``.

    Raises ``InvalidRow`` if a row has the wrong length or an element's high byte is not zero,
    ``InvalidPadding`` if any byte after ``size`` is not zero, ``InvalidBlobSize`` if the
    number of rows does not match ``size``.
    """
    if len(rows) != compute_row_count(size):
        raise InvalidBlobSize(f"{len(rows)} rows cannot hold a blob of {size:,} bytes")
    for index, row in enumerate(rows):
        if len(row) != BYTES_PER_ROW:
            raise InvalidRow(f"row {index} has {len(row)} bytes, expected {BYTES_PER_ROW}")
    elements = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, BYTES_PER_FIELD_ELEMENT)
    if elements[:, 0].any():
        raise InvalidRow("a field element has a non-zero high byte")
    payload = elements[:, 1:].tobytes()
    if any(payload[size:]):
        raise InvalidPadding("non-zero bytes after the end of the blob")
    return payload[:size]


def compute_commitments_root(commitments: Sequence[bytes]) -> bytes:
    """Merkle root over ``keccak256(commitment)`` leaves; an odd last node is carried up.

    Raises ``BlobError`` for an empty list or a commitment that is not 48 bytes.
    """
    if not commitments:
        raise BlobError("a blob has at least one commitment")
    for commitment in commitments:
        if len(commitment) != BYTES_PER_COMMITMENT:
            raise BlobError(f"a KZG commitment is {BYTES_PER_COMMITMENT} bytes, got {len(commitment)}")
    level = [keccak256(c) for c in commitments]
    while len(level) > 1:
        parents = [keccak256_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def parse_address(address: str) -> bytes:
    """The 20 bytes of a hex account address (``0x`` optional, any case); ``BlobError`` if not one."""
    try:
        raw = bytes.fromhex(address.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != ADDRESS_BYTES:
        raise BlobError(f"a submitter is a {ADDRESS_BYTES}-byte address, got {address!r}")
    return raw


def compute_blob_id(submitter: str, size: int, commitments: Sequence[bytes]) -> bytes:
    """``keccak256(submitter || uint64_be(size) || commitments_root)``; checks the row count
    matches ``size`` and that ``submitter`` is an address."""
    if len(commitments) != compute_row_count(size):
        raise BlobError(
            f"a blob of {size:,} bytes has {compute_row_count(size)} rows, got {len(commitments)} commitments"
        )
    return keccak256(parse_address(submitter) + size.to_bytes(SIZE_BYTES, "big") + compute_commitments_root(commitments))


@dataclass(frozen=True)
class BlobHeader:
    """What the chain records about a blob: its size and its row commitments."""

    size: int
    commitments: tuple[bytes, ...]

    @property
    def rows(self) -> int:
        return len(self.commitments)

    def blob_id(self, submitter: str) -> bytes:
        """The id of this blob when ``submitter`` submits it (``compute_blob_id``)."""
        return compute_blob_id(submitter, self.size, self.commitments)

    def encode_commitments(self) -> bytes:
        """The commitments concatenated, as ``DAEntrance.submitBlob`` takes them."""
        return b"".join(self.commitments)

    @classmethod
    def decode(cls, size: int, commitments: bytes) -> BlobHeader:
        """Split concatenated 48-byte commitments; raises ``BlobError`` on a bad length."""
        if len(commitments) % BYTES_PER_COMMITMENT:
            raise BlobError("commitments are not a whole number of 48-byte KZG commitments")
        parts = tuple(
            commitments[i : i + BYTES_PER_COMMITMENT]
            for i in range(0, len(commitments), BYTES_PER_COMMITMENT)
        )
        if len(parts) != compute_row_count(size):
            raise BlobError(f"a blob of {size:,} bytes has {compute_row_count(size)} rows, got {len(parts)} commitments")
        return cls(size, parts)
