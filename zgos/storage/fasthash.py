"""Segment roots at native speed when the optional extension ``_treehash`` is built.

``_treehash`` (zgos/storage/_treehash.c, built by ``pip install -e .`` if a C compiler is
present) hashes whole 256 KiB segments, and checks their proofs, in C with the GIL released:
8 (AVX-512) or 4 (AVX2) Keccaks at a time in SIMD lanes, else one at a time with the XKCP
Keccak that safe-pysha3 already ships. Without it every function here falls back to the plain
Python definitions of ``zgos.storage.spec``; the tests check both agree.
"""

from __future__ import annotations

from types import ModuleType

from zgos.storage.spec.flow import compute_proof_segment_count, compute_segment_count
from zgos.storage.spec.merkle import (
    BYTES_PER_SEGMENT,
    SECTORS_PER_SEGMENT,
    Proof,
    compute_segment_root,
)
from zgos.storage.spec.sealing import BYTES_PER_SEAL, seal_with_seed
from zgos.storage.spec.segment import MAX_FILE_SIZE

# The extension itself (also for framefetch's frame receiver); None when it is not built, or
# safe-pysha3 changed the symbols it borrows.
native: ModuleType | None
try:
    import _pysha3

    from zgos.storage import _treehash  # type: ignore[attr-defined]

    WIDEST_LANES: int = _treehash.load(_pysha3.__file__)  # Keccaks at a time on this CPU
    native = _treehash
except (ImportError, OSError, AttributeError):
    native, WIDEST_LANES = None, 1


def use_lanes(lanes: int) -> int:
    """Hash ``lanes`` (1, 4 or 8) messages at a time natively; ``ValueError`` if this CPU cannot."""
    if native is None:
        raise ValueError("the native extension is not built: only the Python path (one lane) runs")
    return int(native.use_lanes(lanes))


def full_segment_roots(data: bytes | bytearray | memoryview) -> list[bytes]:
    """Roots of consecutive full segments (``len(data)`` a multiple of 256 KiB)."""
    view = memoryview(data)
    if native is not None:
        packed: bytes = native.segment_roots(view)
        return [packed[i : i + 32] for i in range(0, len(packed), 32)]
    return [compute_segment_root(view[i : i + BYTES_PER_SEGMENT]) for i in range(0, len(view), BYTES_PER_SEGMENT)]


def segment_root(data: bytes | memoryview, padded_sectors: int = SECTORS_PER_SEGMENT) -> bytes:
    """``merkle.compute_segment_root``, natively for a full segment."""
    if native is not None and len(data) == BYTES_PER_SEGMENT and padded_sectors == SECTORS_PER_SEGMENT:
        return bytes(native.segment_roots(data))
    return compute_segment_root(data, padded_sectors)


def segment_proven(data: bytes | memoryview, proof: Proof, index: int, root: bytes, size: int) -> bool:
    """True when native code proves ``data`` to be segment ``index`` of the file (``root``,
    ``size``): a full segment, not the file's last, with no rear-padding sibling, for which every
    rule of ``segment.validate_segment`` holds, checked with the GIL released. False decides
    nothing: run ``validate_segment``, the reference, which decides and names what is wrong."""
    if native is None or not 0 < size <= MAX_FILE_SIZE:
        return False
    n_data = compute_segment_count(size)
    if index >= n_data - 1:
        return False
    return bool(native.proven_segment(data, b"".join(proof.lemma), bytes(proof.path), index,
                                         compute_proof_segment_count(size), n_data, root))


def seal_pieces(pieces: bytes, seeds: bytes) -> bytes:
    """``sealing.seal`` of each 4 KiB piece in ``pieces``, given its seed (32 bytes per piece in
    ``seeds``, ``sealing.compute_seal_seed``), natively one piece per SIMD lane."""
    if native is not None:
        return bytes(native.seal_many(pieces, seeds))
    return b"".join(seal_with_seed(pieces[i * BYTES_PER_SEAL : (i + 1) * BYTES_PER_SEAL], seeds[i * 32 : (i + 1) * 32])
                    for i in range(len(pieces) // BYTES_PER_SEAL))
