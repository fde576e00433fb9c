"""A file's Merkle tree as clients and nodes use it: segment roots, data root, submission nodes
and segment proofs (storage.md §1.3, §5.3).

The tree is built from the roots of the file's *data* segments (computed by whoever holds the
bytes: in one process, or in parallel by ``zgos.storage.hasher``) plus the sector leaves of the
last proof segment when it is partial. Segments that lie wholly in flow padding get the root of
their zero sectors. ``FileTree.from_bytes`` is the plain single-process construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zgos.storage.spec.flow import (
    Submission,
    SubmissionNode,
    compute_data_root,
    compute_node_heights,
    compute_padded_sectors,
    compute_padded_segment_sectors,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.merkle import (
    BYTES_PER_SEGMENT,
    SECTORS_PER_SEGMENT,
    SEGMENT_HEIGHT,
    ZERO_HASHES,
    ZERO_SECTOR_HASH,
    PromoteTree,
    Proof,
    compute_leaf_hashes,
    compute_sector_count,
    compute_segment_root,
    compute_segment_root_from_leaves,
)


@dataclass(frozen=True)
class FileTree:
    """Everything derived from a file's bytes: data root, nodes, proofs per segment."""

    size: int
    segment_roots: tuple[bytes, ...]  # one per proof segment (flow-padded)
    nodes: tuple[SubmissionNode, ...]
    tree: PromoteTree

    @property
    def root(self) -> bytes:
        return self.tree.root

    @property
    def num_segments(self) -> int:
        """Segments that hold data (and are uploaded)."""
        return compute_segment_count(self.size)

    def proof(self, index: int) -> Proof:
        return self.tree.proof(index)

    def submission(self, tags: bytes = b"") -> Submission:
        return Submission(self.size, tags, self.nodes)

    @classmethod
    def build(cls, size: int, data_segment_roots: Sequence[bytes], last_leaves: Sequence[bytes]) -> FileTree:
        """Assemble the tree of a ``size``-byte file from the roots of its full data segments
        and the sector leaves (unpadded) of its last data segment.

        ``data_segment_roots`` holds every data segment root except the last one."""
        n_data = compute_segment_count(size)
        n_proof = compute_proof_segment_count(size)
        if len(data_segment_roots) != n_data - 1:
            raise ValueError(f"expected {n_data - 1} full segment roots, got {len(data_segment_roots)}")
        last_padded = compute_padded_segment_sectors(size, n_data - 1)
        last_level = list(last_leaves) + [ZERO_SECTOR_HASH] * (last_padded - len(last_leaves))
        last_tree = PromoteTree(last_level)
        roots = [*list(data_segment_roots), last_tree.root]
        for index in range(n_data, n_proof):
            sectors = compute_padded_segment_sectors(size, index)
            roots.append(
                ZERO_HASHES[SEGMENT_HEIGHT]
                if sectors == SECTORS_PER_SEGMENT
                else compute_segment_root_from_leaves([ZERO_SECTOR_HASH] * sectors)
            )
        tree = PromoteTree(roots)
        nodes = []
        offset = 0
        last_start = (n_data - 1) * SECTORS_PER_SEGMENT
        for height in compute_node_heights(compute_sector_count(size)):
            if height >= SEGMENT_HEIGHT:
                root = tree.subtree_root(offset >> SEGMENT_HEIGHT, height - SEGMENT_HEIGHT)
            elif offset >= last_start + len(last_level):
                # a small node wholly in trailing padding segments (only possible below 1024)
                root = ZERO_HASHES[height]
            else:
                root = last_tree.subtree_root(offset - last_start, height)
            nodes.append(SubmissionNode(root, height))
            offset += 1 << height
        assert offset == compute_padded_sectors(compute_sector_count(size))
        assert compute_data_root(nodes) == tree.root, "data root fold disagrees with segment tree"
        return cls(size, tuple(roots), tuple(nodes), tree)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> FileTree:
        """Build the tree of ``data`` in this process."""
        view = memoryview(data)
        n_data = compute_segment_count(len(view))
        roots = [
            compute_segment_root(view[i * BYTES_PER_SEGMENT : (i + 1) * BYTES_PER_SEGMENT])
            for i in range(n_data - 1)
        ]
        last = compute_leaf_hashes(view[(n_data - 1) * BYTES_PER_SEGMENT :])
        return cls.build(len(view), roots, last)
