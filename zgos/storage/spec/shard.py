"""Shards: which flow segments a storage node holds, and which nodes cover a file.

Rule (0G, storage.md §3.5, §4.5): a node with shard config ``(shard_id, num_shard)``, where
``num_shard`` is a power of two and ``0 <= shard_id < num_shard``, stores exactly the flow
segments ``s`` with ``s % num_shard == shard_id``. A file's segment ``i`` is flow segment
``start_entry // SECTORS_PER_SEGMENT + i`` (every file lies in one segment or starts on a
segment boundary, §1.5), so nodes of different shards split every file between them.

A set of nodes *covers* the flow ``replicas`` times when every residue class modulo the largest
``num_shard`` among them is held by at least ``replicas`` nodes (§5.3 step 7). ``select_nodes``
picks such a set greedily, preferring nodes with few shards (0G's default ``min`` method).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zgos.core.errors import ZgError
from zgos.storage.spec.merkle import SECTORS_PER_SEGMENT

MAX_NUM_SHARD = 1 << 20  # far above any real network; keeps residue tables small


class InvalidShardConfig(ZgError):
    """A shard config breaks the rule; the message says which part."""


@dataclass(frozen=True, order=True)
class ShardConfig:
    """``(shard_id, num_shard)``: the node holds flow segments ``s % num_shard == shard_id``."""

    shard_id: int = 0
    num_shard: int = 1

    def __post_init__(self) -> None:
        n, i = self.num_shard, self.shard_id
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NUM_SHARD or n & (n - 1):
            raise InvalidShardConfig(f"numShard must be a power of two in 1..{MAX_NUM_SHARD}, got {n!r}")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise InvalidShardConfig(f"shardId must be in 0..{n - 1}, got {i!r}")

    @classmethod
    def parse(cls, text: str) -> ShardConfig:
        """``"i/n"`` (e.g. ``"1/4"``) as a config."""
        parts = text.strip().split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise InvalidShardConfig(f"shard must look like ID/NUM (e.g. 0/4), got {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    @classmethod
    def from_json(cls, value: Any) -> ShardConfig:
        """0G's ``{shardId, numShard}``."""
        if not isinstance(value, dict):
            raise InvalidShardConfig("shard config must be an object {shardId, numShard}")
        return cls(value.get("shardId"), value.get("numShard"))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, int]:
        return {"shardId": self.shard_id, "numShard": self.num_shard}

    def __str__(self) -> str:
        return f"{self.shard_id}/{self.num_shard}"

    def holds(self, flow_segment: int) -> bool:
        return flow_segment % self.num_shard == self.shard_id

    def intersects(self, other: ShardConfig) -> bool:
        """True when some flow segment is held by both configs."""
        n = min(self.num_shard, other.num_shard)
        return self.shard_id % n == other.shard_id % n


FULL_SHARD = ShardConfig(0, 1)


def compute_first_flow_segment(start_entry: int) -> int:
    """Flow segment of a file's segment 0 (``start_entry`` = its first flow sector)."""
    return start_entry // SECTORS_PER_SEGMENT


def compute_flow_segment(start_entry: int, index: int) -> int:
    """Flow segment of file segment ``index``."""
    return compute_first_flow_segment(start_entry) + index


def compute_shard_segments(start_entry: int, num_segments: int, shard: ShardConfig) -> range:
    """File segment indexes (of ``num_segments``) that ``shard`` holds, in order."""
    first = compute_first_flow_segment(start_entry)
    offset = (shard.shard_id - first) % shard.num_shard
    return range(offset, num_segments, shard.num_shard)


def compute_coverage(shards: Sequence[ShardConfig]) -> list[int]:
    """How many configs hold each residue class modulo the largest ``num_shard`` (empty: [])."""
    if not shards:
        return []
    modulus = max(s.num_shard for s in shards)
    counts = [0] * modulus
    for shard in shards:
        for residue in range(shard.shard_id, modulus, shard.num_shard):
            counts[residue] += 1
    return counts


def covers(shards: Sequence[ShardConfig], replicas: int = 1) -> bool:
    """True when every flow segment is held by at least ``replicas`` of ``shards``."""
    counts = compute_coverage(shards)
    return bool(counts) and min(counts) >= replicas


def select_nodes(shards: Sequence[ShardConfig], replicas: int = 1) -> list[int] | None:
    """Indexes into ``shards`` of nodes covering every segment ``replicas`` times, or None.

    Greedy in order of (num_shard, index): a node is taken when it holds a residue still held
    fewer than ``replicas`` times. Coverage only grows, so a skipped node never becomes useful
    later, and the greedy pass finds a cover whenever all of ``shards`` together form one."""
    if replicas < 1 or not shards:
        return None
    modulus = max(s.num_shard for s in shards)
    counts = [0] * modulus
    chosen: list[int] = []
    for index in sorted(range(len(shards)), key=lambda k: (shards[k].num_shard, k)):
        shard = shards[index]
        residues = range(shard.shard_id, modulus, shard.num_shard)
        if any(counts[r] < replicas for r in residues):
            chosen.append(index)
            for r in residues:
                counts[r] += 1
            if min(counts) >= replicas:
                return sorted(chosen)
    return None
