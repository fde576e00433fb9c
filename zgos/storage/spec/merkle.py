"""Merkle trees of the 0G storage log: sectors, promote trees, proofs, segment roots.

A file is cut into 256-byte sectors (the last one zero-padded); a sector's leaf is
``keccak256(sector)`` and a parent is ``keccak256(left || right)`` with no tagging
(storage.md §1.3). The file tree is a *promote* tree: nodes are paired left to right at each
level and an odd last node is carried up unchanged, so the root splits into a left subtree of
the largest power of two strictly below ``n`` leaves (``n/2`` when ``n`` is a power of two)
and a right subtree of the rest.

A ``Proof`` is 0G's ``FileProof``: ``lemma = [leaf, sibling_1 .. sibling_k, root]`` and
``path[i]`` is True when the running node is the LEFT child at that step (its sibling is on
the right). Promoted levels add no entry. A proof is valid for leaf position ``p`` of ``n``
only if its path also *encodes* ``p`` (``compute_proof_position``): without that check a
proof for one segment could be replayed for another.

Segments are 1024 sectors (256 KiB); a segment's root is the promote root of its sector
leaves extended with zero-sector leaves up to that segment's size in the flow-padded layout
(storage.md §1.2, §4.3). The data root of a file is the promote root over its segment roots.

``compute_promote_root`` and ``compute_promote_proof`` are the plain recursive definitions;
``PromoteTree`` builds all levels bottom-up once and answers roots and proofs quickly. The
tests check that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sha3

from zgos.core.errors import ZgError
from zgos.core.hashing import HASH_BYTES, keccak256, keccak256_pair

BYTES_PER_SECTOR = 256
SECTORS_PER_SEGMENT = 1024
BYTES_PER_SEGMENT = BYTES_PER_SECTOR * SECTORS_PER_SEGMENT  # 256 KiB
SEGMENT_HEIGHT = 10  # log2(SECTORS_PER_SEGMENT)
MAX_TREE_HEIGHT = 64

ZERO_SECTOR = bytes(BYTES_PER_SECTOR)


def _zero_hashes() -> tuple[bytes, ...]:
    table = [keccak256(ZERO_SECTOR)]
    for _ in range(MAX_TREE_HEIGHT):
        table.append(keccak256_pair(table[-1], table[-1]))
    return tuple(table)


# ZERO_HASHES[h] = root of a complete tree of 2^h zero sectors (Flow.sol's ``zeros(h)``).
ZERO_HASHES = _zero_hashes()
ZERO_SECTOR_HASH = ZERO_HASHES[0]


class InvalidProof(ZgError):
    """A Merkle proof does not prove the claimed leaf at the claimed position under the root."""


def next_pow2(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for ``n <= 1``)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def compute_sector_count(size: int) -> int:
    """Number of 256-byte sectors holding ``size`` bytes."""
    return ceil_div(size, BYTES_PER_SECTOR)


def compute_leaf_hashes(data: bytes | memoryview) -> list[bytes]:
    """Leaf hashes of ``data`` cut into sectors, the last one zero-padded to 256 bytes."""
    view = memoryview(data)
    full = len(view) // BYTES_PER_SECTOR * BYTES_PER_SECTOR
    hasher = sha3.keccak_256  # called directly: this loop is the hot path of every upload
    leaves: list[bytes] = [hasher(view[i : i + BYTES_PER_SECTOR]).digest() for i in range(0, full, BYTES_PER_SECTOR)]
    if full < len(view):
        tail = bytes(view[full:])
        leaves.append(keccak256(tail + bytes(BYTES_PER_SECTOR - len(tail))))
    return leaves


def compute_promote_split(n: int) -> int:
    """Leaves in the left subtree of a promote tree of ``n >= 2`` leaves."""
    return next_pow2(n) // 2


def compute_promote_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the promote tree over ``leaves`` (reference definition, recursive)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    if len(leaves) == 1:
        return leaves[0]
    left = compute_promote_split(len(leaves))
    return keccak256_pair(compute_promote_root(leaves[:left]), compute_promote_root(leaves[left:]))


@dataclass(frozen=True)
class Proof:
    """0G's ``FileProof``: ``lemma = [leaf, siblings.., root]``, ``path[i]`` = node is left."""

    lemma: tuple[bytes, ...]
    path: tuple[bool, ...]

    @property
    def leaf(self) -> bytes:
        return self.lemma[0]

    @property
    def root(self) -> bytes:
        return self.lemma[-1]

    @property
    def siblings(self) -> tuple[bytes, ...]:
        return self.lemma[1:-1] if len(self.lemma) > 1 else ()

    def to_json(self) -> dict[str, list[str] | list[bool]]:
        """0G's JSON shape: ``{"lemma": ["0x..", ..], "path": [true, ..]}``."""
        return {"lemma": ["0x" + item.hex() for item in self.lemma], "path": list(self.path)}

    @classmethod
    def from_json(cls, value: object) -> Proof:
        """Parse 0G's JSON shape; raise ``InvalidProof`` on anything malformed."""
        if not isinstance(value, dict):
            raise InvalidProof("proof must be an object with lemma and path")
        lemma, path = value.get("lemma"), value.get("path")
        if not isinstance(lemma, list) or not isinstance(path, list):
            raise InvalidProof("proof.lemma and proof.path must be arrays")
        if not all(isinstance(item, bool) for item in path):
            raise InvalidProof("proof.path must hold booleans")
        return cls(tuple(parse_hash(item, "proof.lemma item") for item in lemma), tuple(path))


def parse_hash(value: object, what: str = "hash") -> bytes:
    """A 32-byte hash from ``0x``-prefixed (or bare) hex; ``InvalidProof`` otherwise."""
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        if len(text) == 2 * HASH_BYTES:
            try:
                return bytes.fromhex(text)
            except ValueError:
                pass
    raise InvalidProof(f"{what} is not a 32-byte hex string")


def compute_promote_proof(leaves: Sequence[bytes], index: int) -> Proof:
    """Proof of ``leaves[index]`` in the promote tree (reference definition, recursive)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} outside a tree of {len(leaves)}")
    if len(leaves) == 1:
        return Proof((leaves[0],), ())  # 0G's single-leaf proof: lemma = [root]
    siblings: list[bytes] = []
    path: list[bool] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:  # walk down from the root, recording (sibling, side) top-down
        mid = lo + compute_promote_split(hi - lo)
        if index < mid:
            siblings.append(compute_promote_root(leaves[mid:hi]))
            path.append(True)
            hi = mid
        else:
            siblings.append(compute_promote_root(leaves[lo:mid]))
            path.append(False)
            lo = mid
    siblings.reverse()
    path.reverse()
    return Proof((leaves[index], *siblings, compute_promote_root(leaves)), tuple(path))


def compute_proof_root(proof: Proof) -> bytes:
    """Fold the proof's siblings bottom-up from its leaf."""
    node = proof.leaf
    for sibling, is_left in zip(proof.siblings, proof.path, strict=True):
        node = keccak256_pair(node, sibling) if is_left else keccak256_pair(sibling, node)
    return node


def compute_proof_position(path: Sequence[bool], n_leaves: int) -> int:
    """The leaf position a promote-tree ``path`` encodes in a tree of ``n_leaves``.

    Raises ``InvalidProof`` if the path does not end on a single leaf of that tree.
    """
    position, n = 0, n_leaves
    for is_left in reversed(path):  # from the root down
        if n <= 1:
            raise InvalidProof(f"proof path is longer than the tree of {n_leaves} leaves")
        left = compute_promote_split(n)
        if is_left:
            n = left
        else:
            position += left
            n -= left
    if n != 1:
        raise InvalidProof(f"proof path is too short for a tree of {n_leaves} leaves")
    return position


def compute_proof_path(position: int, n_leaves: int) -> tuple[bool, ...]:
    """The promote-tree path of leaf ``position`` among ``n_leaves``, bottom-up like a proof's
    (``True``: the node is a left child); the inverse of ``compute_proof_position``."""
    if not 0 <= position < n_leaves:
        raise IndexError(f"leaf {position} outside a tree of {n_leaves}")
    path: list[bool] = []
    lo, hi = 0, n_leaves
    while hi - lo > 1:
        mid = lo + compute_promote_split(hi - lo)
        path.append(position < mid)
        lo, hi = (lo, mid) if position < mid else (mid, hi)
    return tuple(reversed(path))


def validate_proof(proof: Proof, root: bytes, leaf: bytes, position: int, n_leaves: int) -> None:
    """Check that ``proof`` proves ``leaf`` at ``position`` of ``n_leaves`` under ``root``.

    Raises ``InvalidProof`` naming the first failed check (0G ``FileProof::validate``).
    """
    if len(proof.lemma) != len(proof.path) + 2 and not (len(proof.lemma) == 1 and not proof.path):
        raise InvalidProof(f"proof has {len(proof.lemma)} lemma items for {len(proof.path)} path steps")
    if proof.leaf != leaf:
        raise InvalidProof("proof leaf does not match the segment root")
    if proof.root != root:
        raise InvalidProof("proof root does not match the file's data root")
    found = compute_proof_position(proof.path, n_leaves)
    if found != position:
        raise InvalidProof(f"proof is for position {found}, not {position}")
    if compute_proof_root(proof) != root:
        raise InvalidProof("proof siblings do not hash to the root")


class PromoteTree:
    """All levels of a promote tree, built bottom-up once (fast path for many proofs)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            levels.append(compute_parent_level(levels[-1]))
        self.levels = levels

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def n_leaves(self) -> int:
        return len(self.levels[0])

    def subtree_root(self, offset: int, height: int) -> bytes:
        """Root of the complete subtree of ``2^height`` leaves starting at ``offset``
        (aligned to its size and wholly inside the leaves)."""
        if offset % (1 << height) or offset + (1 << height) > self.n_leaves:
            raise ValueError(f"no complete aligned subtree of height {height} at {offset}")
        return self.levels[height][offset >> height]

    def proof(self, index: int) -> Proof:
        if not 0 <= index < self.n_leaves:
            raise IndexError(f"leaf {index} outside a tree of {self.n_leaves}")
        if self.n_leaves == 1:
            return Proof((self.root,), ())
        leaf = self.levels[0][index]
        siblings: list[bytes] = []
        path: list[bool] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):  # else the node is promoted: no entry
                siblings.append(level[sibling])
                path.append(index % 2 == 0)
            index //= 2
        return Proof((leaf, *siblings, self.root), tuple(path))


def compute_parent_level(level: Sequence[bytes]) -> list[bytes]:
    """Pair nodes left to right; an odd last node is carried up unchanged."""
    parents = [keccak256_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def compute_segment_root(data: bytes | memoryview, padded_sectors: int = SECTORS_PER_SEGMENT) -> bytes:
    """Root of one segment: its sector leaves extended with zero-sector leaves up to
    ``padded_sectors`` (the segment's size in the flow-padded layout, §1.3)."""
    leaves = compute_leaf_hashes(data)
    if len(leaves) > padded_sectors:
        raise ValueError(f"segment of {len(leaves)} sectors exceeds its padded size {padded_sectors}")
    leaves.extend([ZERO_SECTOR_HASH] * (padded_sectors - len(leaves)))
    return compute_segment_root_from_leaves(leaves)


def compute_segment_root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Promote root of a segment's leaves, bottom-up (same value as ``compute_promote_root``)."""
    level = list(leaves)
    while len(level) > 1:
        level = compute_parent_level(level)
    return level[0]
