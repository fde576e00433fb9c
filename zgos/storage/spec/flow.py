"""The flow: how a file becomes a ``Submission``, where it lands in the global sector log,
what it costs, and the flow's own Merkle root.

Rules (storage.md §1.2–§1.5, §2.1–§2.2):

* A file of ``size > 0`` bytes has ``ceil(size/256)`` sectors, padded with zero sectors to a
  multiple of ``p/16`` where ``p`` is the next power of two (``compute_padded_sectors``).
* The padded sector count splits into descending powers of two, the *submission nodes*
  (at most 4, heights spanning < 4 levels); each node's root is the complete Merkle root of
  its ``2^height`` sectors and the file's data root is the right fold of the node roots.
* ``Submission.validate()`` and ``compute_submission_digest`` mirror ``Submission.sol``.
* The flow is one append-only array of sectors; sector 0 is a placeholder with leaf
  ``0x00..00``. A submission's first node is aligned to its size (the gap is zero sectors) and a
  file crossing a segment boundary starts on a segment boundary (``compute_flow_placement``).
* The flow root is the complete tree over ``2^H >= length`` leaves, unwritten leaves being the
  zero-sector hash; ``FlowTree`` maintains it by appending aligned subtrees, as ``Flow.sol`` does.
* The fee is ``sum(2^height) * pricePerSector``: sectors charged are the padded node sizes.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256, keccak256_pair
from zgos.storage.spec.merkle import (
    BYTES_PER_SECTOR,
    MAX_TREE_HEIGHT,
    SECTORS_PER_SEGMENT,
    ZERO_HASHES,
    ZERO_SECTOR_HASH,
    Proof,
    ceil_div,
    compute_leaf_hashes,
    compute_sector_count,
    compute_segment_root_from_leaves,
    next_pow2,
)

MAX_SUBMISSION_NODES = 4  # heights of one submission span fewer than 4 levels
PADDING_GRANULES = 16  # flow padding granule = next_pow2(sectors) / 16
PLACEHOLDER_LEAF = bytes(32)  # leaf of flow sector 0
SECTORS_PER_PRICING_CHUNK = 1 << 25  # 8 GiB reward pools (§2.3)


class InvalidSubmission(ZgError):
    """A submission breaks one of ``Submission.valid()``'s rules."""


def compute_padded_sectors(sectors: int) -> int:
    """Sectors after flow padding: a multiple of ``next_pow2(sectors)/16`` (1 below 16)."""
    if sectors <= 0:
        raise InvalidSubmission("a file needs at least one byte")
    p = next_pow2(sectors)
    if p == sectors:
        return sectors
    granule = 1 if p < PADDING_GRANULES else p // PADDING_GRANULES
    return ceil_div(sectors, granule) * granule


def compute_node_heights(sectors: int) -> list[int]:
    """Heights of the submission nodes: the padded count's set bits, largest first."""
    padded = compute_padded_sectors(sectors)
    return [h for h in range(padded.bit_length() - 1, -1, -1) if padded >> h & 1]


def compute_segment_count(size: int) -> int:
    """Segments holding file data (the ones uploaded): ``ceil(sectors / 1024)``."""
    return ceil_div(compute_sector_count(size), SECTORS_PER_SEGMENT)


def compute_proof_segment_count(size: int) -> int:
    """Segments of the flow-padded file: the leaf count of segment proofs."""
    return ceil_div(compute_padded_sectors(compute_sector_count(size)), SECTORS_PER_SEGMENT)


def compute_padded_segment_sectors(size: int, index: int) -> int:
    """Size in sectors of proof segment ``index`` in the padded layout (1024 except the last)."""
    padded = compute_padded_sectors(compute_sector_count(size))
    return min(SECTORS_PER_SEGMENT, padded - index * SECTORS_PER_SEGMENT)


def compute_segment_data_sectors(size: int, index: int) -> int:
    """Sectors of real data segment ``index`` carries (the upload/download length / 256)."""
    sectors = compute_sector_count(size)
    return max(0, min(SECTORS_PER_SEGMENT, sectors - index * SECTORS_PER_SEGMENT))


@dataclass(frozen=True)
class SubmissionNode:
    """A complete subtree of ``2^height`` sectors of the padded file."""

    root: bytes
    height: int

    @property
    def sectors(self) -> int:
        return 1 << self.height


@dataclass(frozen=True)
class Submission:
    """``SubmissionData`` of 0G's Flow ABI: unpadded byte length, opaque tags, nodes."""

    length: int
    tags: bytes
    nodes: tuple[SubmissionNode, ...]

    @property
    def sectors(self) -> int:
        """Sectors charged: ``Σ 2^height``."""
        return sum(node.sectors for node in self.nodes)

    @property
    def heights(self) -> list[int]:
        return [node.height for node in self.nodes]

    def validate(self) -> None:
        """``Submission.valid()`` (§1.4); raises ``InvalidSubmission`` naming the broken rule."""
        if not self.nodes:
            raise InvalidSubmission("a submission needs at least one node")
        heights = self.heights
        if heights[0] >= MAX_TREE_HEIGHT:
            raise InvalidSubmission(f"node height {heights[0]} is not below {MAX_TREE_HEIGHT}")
        if any(a <= b for a, b in itertools.pairwise(heights)):
            raise InvalidSubmission(f"node heights {heights} are not strictly decreasing")
        if heights[0] - heights[-1] >= MAX_SUBMISSION_NODES:
            raise InvalidSubmission(f"node heights {heights} span {MAX_SUBMISSION_NODES} or more levels")
        size = self.sectors
        if self.length > size * BYTES_PER_SECTOR:
            raise InvalidSubmission(f"length {self.length} exceeds {size} sectors")
        if size < PADDING_GRANULES:
            last_capacity = size - 1
        elif len(self.nodes) == 1:
            last_capacity = size - size // PADDING_GRANULES
        else:
            last_capacity = size - (1 << (heights[0] - 3))
        if self.length <= last_capacity * BYTES_PER_SECTOR:
            raise InvalidSubmission(f"length {self.length} fits a smaller padding than {size} sectors")

    def to_abi(self) -> tuple[int, bytes, list[tuple[bytes, int]]]:
        """The ``SubmissionData`` tuple for web3/eth-abi."""
        return (self.length, self.tags, [(node.root, node.height) for node in self.nodes])

    @classmethod
    def from_abi(cls, value: Sequence[object]) -> Submission:
        length, tags, nodes = value
        assert isinstance(length, int) and isinstance(tags, bytes) and isinstance(nodes, list | tuple)
        return cls(length, tags, tuple(SubmissionNode(bytes(r), int(h)) for r, h in nodes))


def compute_submission_digest(submission: Submission) -> bytes:
    """``Submission.digest()``: keccak of the concatenated node roots (the event's identity)."""
    return keccak256(b"".join(node.root for node in submission.nodes))


def compute_data_root(nodes: Sequence[SubmissionNode]) -> bytes:
    """The file's data root: right fold of the node roots (§1.3)."""
    if not nodes:
        raise InvalidSubmission("a submission needs at least one node")
    root = nodes[-1].root
    for node in reversed(nodes[:-1]):
        root = keccak256_pair(node.root, root)
    return root


def next_align(position: int, height: int) -> int:
    """Round ``position`` up to a multiple of ``2^height`` (0 stays 0)."""
    return 0 if position == 0 else (((position - 1) >> height) + 1) << height


@dataclass(frozen=True)
class Placement:
    """Where a submission lands: first sector, flow length after it, and the zero gap."""

    start: int
    end: int
    gap: int


def compute_flow_placement(flow_length: int, heights: Sequence[int]) -> Placement:
    """``FlowTreeLib.pad`` + ``insertNode`` (§1.5): align the first node to its size; a file
    that would straddle a segment boundary starts on the next segment boundary."""
    size = sum(1 << h for h in heights)
    start = next_align(flow_length, heights[0])
    cursor = flow_length
    if start % SECTORS_PER_SEGMENT and start // SECTORS_PER_SEGMENT != (start + size - 1) // SECTORS_PER_SEGMENT:
        cursor = start + SECTORS_PER_SEGMENT - start % SECTORS_PER_SEGMENT
    first: int | None = None
    for height in heights:
        position = next_align(cursor, height)
        first = position if first is None else first
        cursor = position + (1 << height)
    assert first is not None
    return Placement(start=first, end=cursor, gap=first - flow_length)


def compute_fee(submission: Submission, price_per_sector: int) -> int:
    """Fee in wei: sectors charged times the market's price per sector (§2.2)."""
    return submission.sectors * price_per_sector


def compute_gap_nodes(position: int, end: int) -> list[tuple[int, int]]:
    """Split the zero range ``[position, end)`` into maximal aligned subtrees ``(pos, height)``."""
    nodes: list[tuple[int, int]] = []
    while position < end:
        height = (position & -position).bit_length() - 1 if position else MAX_TREE_HEIGHT
        while position + (1 << height) > end:
            height -= 1
        nodes.append((position, height))
        position += 1 << height
    return nodes


@dataclass
class FlowTree:
    """The flow's Merkle root, maintained by appending aligned subtrees (deposit-contract
    frontier). ``branch[h]`` holds the completed left subtree at level ``h``."""

    length: int = 1
    branch: list[bytes] = field(default_factory=lambda: [PLACEHOLDER_LEAF] + [bytes(32)] * MAX_TREE_HEIGHT)

    def append_node(self, root: bytes, height: int) -> None:
        """Append a subtree of ``2^height`` sectors; ``length`` must be aligned to it."""
        if self.length % (1 << height):
            raise ValueError(f"flow length {self.length} is not aligned to height {height}")
        node, level, count = root, height, (self.length >> height) + 1
        while count & 1 == 0:
            node = keccak256_pair(self.branch[level], node)
            count >>= 1
            level += 1
        self.branch[level] = node
        self.length += 1 << height

    def pad_to(self, position: int) -> None:
        """Append zero sectors up to ``position``."""
        for _, height in compute_gap_nodes(self.length, position):
            self.append_node(ZERO_HASHES[height], height)

    def append_submission(self, submission: Submission) -> Placement:
        placement = compute_flow_placement(self.length, submission.heights)
        self.pad_to(placement.start)
        for node in submission.nodes:
            self.pad_to(next_align(self.length, node.height))
            self.append_node(node.root, node.height)
        assert self.length == placement.end
        return placement

    @property
    def root(self) -> bytes:
        """Root of the complete tree over ``next_pow2(length)`` leaves."""
        depth = (next_pow2(self.length)).bit_length() - 1
        if self.length == 1 << depth:  # a complete tree: its root is the top frontier node
            return self.branch[depth]
        node, size = ZERO_HASHES[0], self.length
        for level in range(depth):
            if size & 1:
                node = keccak256_pair(self.branch[level], node)
            else:
                node = keccak256_pair(node, ZERO_HASHES[level])
            size >>= 1
        return node


def compute_flow_root(leaves: Sequence[bytes]) -> bytes:
    """Reference flow root: complete tree over the leaves padded with zero-sector hashes."""
    level = list(leaves) + [ZERO_HASHES[0]] * (next_pow2(len(leaves)) - len(leaves))
    while len(level) > 1:
        level = [keccak256_pair(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def compute_pricing_chunks(start: int, sectors: int) -> list[tuple[int, int]]:
    """Split ``[start, start+sectors)`` over 8 GiB pricing chunks: ``(index, sectors)``."""
    parts: list[tuple[int, int]] = []
    position, end = start, start + sectors
    while position < end:
        index = position // SECTORS_PER_PRICING_CHUNK
        stop = min(end, (index + 1) * SECTORS_PER_PRICING_CHUNK)
        parts.append((index, stop - position))
        position = stop
    return parts


@dataclass(frozen=True)
class FlowItem:
    """A known aligned subtree of the flow: the placeholder, a zero gap or a submission node.
    ``seq`` is the submission it belongs to (None for placeholder and gaps)."""

    start: int
    height: int
    root: bytes
    seq: int | None = None


def compute_flow_items(submissions: Sequence[tuple[int, Submission]]) -> list[FlowItem]:
    """The flow as aligned subtrees, in order, from ``(seq, submission)`` in seq order."""
    items = [FlowItem(0, 0, PLACEHOLDER_LEAF)]
    length = 1
    for seq, submission in submissions:
        placement = compute_flow_placement(length, submission.heights)
        for start, height in compute_gap_nodes(length, placement.start):
            items.append(FlowItem(start, height, ZERO_HASHES[height]))
        length = placement.start
        for node in submission.nodes:
            aligned = next_align(length, node.height)
            for start, height in compute_gap_nodes(length, aligned):
                items.append(FlowItem(start, height, ZERO_HASHES[height]))
            items.append(FlowItem(aligned, node.height, node.root, seq))
            length = aligned + node.sectors
    return items


InnerRoot = Callable[[FlowItem, int, int], bytes]
SectorReader = Callable[[int, int], bytes]  # (first flow sector, count) -> their bytes


def compute_sector_data_root(read: SectorReader, position: int, height: int) -> bytes:
    """Root of the ``2^height`` flow sectors from ``position``, hashed from their data: the
    data inside a submission node, as an ``InnerRoot`` needs it. ``read`` is asked for at most
    one segment (1024 sectors) at a time; bytes it does not return are zero sectors."""
    count = 1 << height
    leaves: list[bytes] = []
    for first in range(position, position + count, SECTORS_PER_SEGMENT):
        sectors = min(SECTORS_PER_SEGMENT, position + count - first)
        data = read(first, sectors)
        leaves += compute_leaf_hashes(data)
        leaves += [ZERO_SECTOR_HASH] * (sectors - ceil_div(len(data), BYTES_PER_SECTOR))
    return compute_segment_root_from_leaves(leaves)


def compute_flow_subtree_root(items: Sequence[FlowItem], position: int, height: int, inner: InnerRoot) -> bytes:
    """Root of flow sectors ``[position, position + 2^height)`` (aligned). A range strictly
    inside a submission node is computed by ``inner(item, position, height)`` from the data."""
    length = items[-1].start + (1 << items[-1].height)
    if position >= length:
        return ZERO_HASHES[height]
    index = bisect_right([item.start for item in items], position) - 1
    item = items[index]
    if item.start == position and item.height == height:
        return item.root
    if item.height > height:
        return ZERO_HASHES[height] if item.seq is None else inner(item, position, height)
    half = 1 << (height - 1)
    return keccak256_pair(
        compute_flow_subtree_root(items, position, height - 1, inner),
        compute_flow_subtree_root(items, position + half, height - 1, inner),
    )


def compute_flow_proof(items: Sequence[FlowItem], sector: int, inner: InnerRoot) -> Proof:
    """Proof of flow ``sector`` under the flow root (complete tree of ``next_pow2(length)``)."""
    length = items[-1].start + (1 << items[-1].height)
    if not 0 <= sector < length:
        raise ValueError(f"sector {sector} is outside the flow of {length} sectors")
    depth = next_pow2(length).bit_length() - 1
    siblings = [compute_flow_subtree_root(items, ((sector >> level) ^ 1) << level, level, inner) for level in range(depth)]
    path = tuple((sector >> level) & 1 == 0 for level in range(depth))
    leaf = compute_flow_subtree_root(items, sector, 0, inner)
    root = compute_flow_subtree_root(items, 0, depth, inner)
    return Proof((leaf, *siblings, root) if depth else (root,), path)
