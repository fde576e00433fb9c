"""Keccak-256, the hash of Ethereum and of every 0G Merkle tree.

Python's ``hashlib.sha3_256`` is the NIST SHA3 (different padding) and is NOT this function.
``safe-pysha3`` wraps the XKCP-optimised implementation and is the fastest one measured here
(~700k 256-byte hashes per second per core; see shared/reference/libraries.md).
"""

from __future__ import annotations

import sha3

HASH_BYTES = 32
ZERO_HASH = b"\x00" * HASH_BYTES


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data``."""
    return sha3.keccak_256(data).digest()  # type: ignore[no-any-return]


def keccak256_pair(left: bytes, right: bytes) -> bytes:
    """Return ``keccak256(left || right)``, the parent of two Merkle nodes."""
    hasher = sha3.keccak_256(left)
    hasher.update(right)
    return hasher.digest()  # type: ignore[no-any-return]
