"""Erasure coding of stored files: stripes, the parity file, and placement on shards.

0G claims erasure coding for storage but stores plain replicas (storage.md §7). zgos protects
a file with systematic Reed-Solomon ``k+m`` coding over whole 256 KiB segments: every *stripe*
is ``k`` data segments of the file plus ``m`` parity segments, and any ``k`` of its ``k+m``
*pieces* rebuild the others. The file itself is stored unchanged (its data root stays the 0G
root of its bytes); the parity segments form a second file, the *parity file*, submitted and
paid for like any other. The link data root -> parity root -> ``(k, m, groups)`` is recorded on
chain (``ErasureRegistry``), and everything below is recomputed from it by every reader.

Placement rule. Nodes hold flow segments by the shard rule (§4.5): ``(shard_id, num_shard)``
holds flow segment ``s`` iff ``s % num_shard == shard_id``. Let ``n`` be the largest
``num_shard`` of the placement *groups*: shard configs whose residue sets partition the
residues modulo ``n`` (each residue held by exactly one group; one group = one node, or
replicas of one shard). A piece at flow segment ``s`` is on group ``G(s % n)``.

1. Data stripes. Data segment ``i`` is flow segment ``a + i`` (``a`` = the file's first flow
   segment, known once its submission is on chain). While data segments remain, a stripe
   takes the ``k`` groups with the most remaining data segments (ties: lower group index) and
   pops each one's lowest remaining segment; if fewer than ``k`` groups have data left, the
   rest of the stripe is *virtual zero* pieces (all-zero, known to everyone, never stored).
   Data pieces are ordered by segment index, virtual zeros last.
2. Parity groups. The stripe's ``m`` parity pieces go to the ``m`` groups holding none of its
   data with the least parity load per residue so far (ties: lower group index).
3. Parity file. Its segment ``j`` is flow segment ``b + j``; the uploader makes it at least
   ``n`` segments, so its first submission node spans at least ``n`` segments and the Flow
   aligns it (§1.5): ``b % n == 0`` and segment ``j`` is on group ``G(j % n)``. Walking
   ``j = 0, 1, ...``, position ``j`` gets the next pending parity piece (in stripe order) of
   group ``G(j % n)``, or an all-zero *filler* segment; then filler up to ``n`` segments.

So the ``k + m`` pieces of every stripe are on distinct groups, hence distinct nodes, and the
file survives the loss of any ``m`` groups. Limits: it needs at least ``k + m`` groups (with
one node per shard: ``num_shard >= k + m`` and every shard present); groups holding more
residues than others (e.g. a ``/4`` node among ``/8`` nodes) hold more pieces and make more
stripes carry virtual zeros; the parity file costs at least ``n`` segments (small files pay
relatively more); nodes of one group are replicas, not extra durability for this rule.
Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from zgos.core.errors import ZgError
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT
from zgos.storage.spec.shard import ShardConfig

MAX_PIECES = 256  # Reed-Solomon over GF(2^8): at most 256 pieces per stripe (zfec's limit)
GROUP_ENCODING_BYTES = 8  # u32 shard id + u32 num shard, big-endian, per group
MAX_GROUPS = 256
PIECE_BYTES = BYTES_PER_SEGMENT  # every piece is one full segment (the last data one zero-padded)


class InvalidErasureParams(ZgError):
    """``k+m`` is malformed or out of range."""


class InvalidLayout(ZgError):
    """The placement groups cannot hold a stripe on distinct groups, or do not partition."""


@dataclass(frozen=True)
class ErasureParams:
    """``k`` data pieces and ``m`` parity pieces per stripe."""

    k: int
    m: int

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and isinstance(self.m, int)) or self.k < 1 or self.m < 1:
            raise InvalidErasureParams(f"k and m must be positive integers, got {self.k}+{self.m}")
        if self.k + self.m > MAX_PIECES:
            raise InvalidErasureParams(f"k+m must be at most {MAX_PIECES}, got {self.k + self.m}")

    @property
    def pieces(self) -> int:
        return self.k + self.m

    @classmethod
    def parse(cls, text: str) -> ErasureParams:
        """``"4+2"`` as ``ErasureParams(4, 2)``."""
        parts = text.strip().split("+")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise InvalidErasureParams(f"erasure coding must look like K+M (e.g. 4+2), got {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    def __str__(self) -> str:
        return f"{self.k}+{self.m}"


@dataclass(frozen=True)
class Stripe:
    """One stripe: ``data[r]`` = data segment index of piece ``r`` (None = virtual zero),
    ``parity[r]`` = parity file segment index of parity piece ``r``; groups alike."""

    data: tuple[int | None, ...]
    parity: tuple[int, ...]
    data_groups: tuple[int | None, ...]
    parity_groups: tuple[int, ...]


@dataclass(frozen=True)
class StripeLayout:
    params: ErasureParams
    groups: tuple[ShardConfig, ...]
    stripes: tuple[Stripe, ...]
    parity_segments: int  # segments of the parity file, filler included

    @property
    def modulus(self) -> int:
        return compute_group_modulus(self.groups)

    def stripe_of_data(self) -> dict[int, int]:
        """Data segment index -> stripe number."""
        return {i: t for t, s in enumerate(self.stripes) for i in s.data if i is not None}

    def stripe_of_parity(self) -> dict[int, tuple[int, int]]:
        """Parity file segment index -> (stripe number, parity row)."""
        return {j: (t, r) for t, s in enumerate(self.stripes) for r, j in enumerate(s.parity)}


def compute_group_modulus(groups: Sequence[ShardConfig]) -> int:
    """``n``: the largest ``num_shard`` among the groups (1 without groups)."""
    return max((g.num_shard for g in groups), default=1)


def compute_residue_owners(groups: Sequence[ShardConfig]) -> list[int]:
    """Group index holding each residue modulo ``n``; ``InvalidLayout`` unless a partition."""
    n = compute_group_modulus(groups)
    owners = [-1] * n
    for index, group in enumerate(groups):
        for residue in range(group.shard_id, n, group.num_shard):
            if owners[residue] != -1:
                raise InvalidLayout(f"shards {groups[owners[residue]]} and {group} both hold residue {residue} mod {n}")
            owners[residue] = index
    if -1 in owners:
        raise InvalidLayout(f"no group holds flow segments with residue {owners.index(-1)} mod {n}")
    return owners


def select_partition(configs: Sequence[ShardConfig]) -> list[int] | None:
    """Indexes of configs whose residue sets partition the residues mod the largest
    ``num_shard``, with as many configs as possible (more groups = more distinct nodes), or
    None if no subset is a partition. Exact: shard ``(i, s)`` is split into ``(i, 2s)`` and
    ``(i + s, 2s)``; a subtree is covered by its own config or by covers of both halves,
    whichever has more groups (ties: the own config; duplicates: the lowest index)."""
    if not configs:
        return None
    n = compute_group_modulus(configs)
    first: dict[ShardConfig, int] = {}
    for index, config in enumerate(configs):
        first.setdefault(config, index)

    def cover(shard_id: int, num_shard: int) -> list[int] | None:
        own = first.get(ShardConfig(shard_id, num_shard))
        split: list[int] | None = None
        if num_shard < n:
            left, right = cover(shard_id, 2 * num_shard), cover(shard_id + num_shard, 2 * num_shard)
            split = left + right if left is not None and right is not None else None
        if split is not None and (own is None or len(split) > 1):
            return split
        return None if own is None else [own]

    chosen = cover(0, 1)
    return None if chosen is None else sorted(chosen)


def compute_stripe_layout(params: ErasureParams, first_flow_segment: int, data_segments: int,
                          groups: Sequence[ShardConfig]) -> StripeLayout:
    """The stripes and parity file of a file of ``data_segments`` segments starting at flow
    segment ``first_flow_segment`` (steps 1-3 of the module rule). Raises ``InvalidLayout``."""
    if data_segments < 1:
        raise InvalidLayout("a file has at least one segment")
    if len(groups) > MAX_GROUPS:
        raise InvalidLayout(f"at most {MAX_GROUPS} placement groups, got {len(groups)}")
    owners = compute_residue_owners(groups)
    if len(groups) < params.pieces:
        raise InvalidLayout(
            f"erasure coding {params} needs {params.pieces} nodes in distinct shards, the placement has {len(groups)}",
            f"run at least {params.pieces} storage nodes with disjoint shards (e.g. --shard i/{_pow2_at_least(params.pieces)})",
        )
    stripes, pending = _assign_stripes(params, owners, len(groups), first_flow_segment, data_segments)
    positions, total = _place_parity(pending, owners, len(stripes), params.m)
    placed = tuple(
        Stripe(s.data, tuple(positions[t]), s.data_groups, s.parity_groups) for t, s in enumerate(stripes)
    )
    return StripeLayout(params, tuple(groups), placed, total)


def _assign_stripes(params: ErasureParams, owners: list[int], group_count: int, first_flow_segment: int,
                    data_segments: int) -> tuple[list[Stripe], list[deque[tuple[int, int]]]]:
    """Step 1-2: the data segments of each stripe (one per group, fullest groups first) and its
    parity groups (least parity-loaded per residue first); per group, the (stripe, row) parity
    pieces it must hold, in order. The stripes' parity positions are left empty."""
    n = len(owners)
    residues_of = [sum(1 for owner in owners if owner == g) for g in range(group_count)]
    remaining: list[deque[int]] = [deque() for _ in range(group_count)]
    for i in range(data_segments):
        remaining[owners[(first_flow_segment + i) % n]].append(i)
    parity_load = [0] * group_count
    stripes: list[Stripe] = []
    pending: list[deque[tuple[int, int]]] = [deque() for _ in range(group_count)]
    while any(remaining):
        order = sorted((g for g in range(group_count) if remaining[g]), key=lambda g: (-len(remaining[g]), g))
        picked = sorted((remaining[g].popleft(), g) for g in order[: params.k])
        padding: list[None] = [None] * (params.k - len(picked))
        data: list[int | None] = [i for i, _ in picked] + padding
        data_groups: list[int | None] = [g for _, g in picked] + padding
        used = {g for g in data_groups if g is not None}
        free = sorted((g for g in range(group_count) if g not in used),
                      key=lambda g: (parity_load[g] * n // residues_of[g], parity_load[g], g))
        parity_groups = tuple(free[: params.m])
        for row, g in enumerate(parity_groups):
            parity_load[g] += 1
            pending[g].append((len(stripes), row))
        stripes.append(Stripe(tuple(data), (), tuple(data_groups), parity_groups))
    return stripes, pending


def _place_parity(pending: list[deque[tuple[int, int]]], owners: list[int], stripe_count: int,
                  m: int) -> tuple[list[list[int]], int]:
    """Step 3: each group's parity pieces, in order, at the parity file segments its residues
    own; returns the positions per (stripe, row) and the parity file's segment count (at least
    one full round of residues)."""
    n = len(owners)
    positions: list[list[int]] = [[0] * m for _ in range(stripe_count)]
    j = 0
    while any(pending):
        queue = pending[owners[j % n]]
        if queue:
            t, row = queue.popleft()
            positions[t][row] = j
        j += 1
    return positions, max(j, n)


def is_valid_parity_start(parity_first_flow_segment: int, groups: Sequence[ShardConfig]) -> bool:
    """True when the parity file starts on a multiple of ``n`` flow segments (rule step 3)."""
    return parity_first_flow_segment % compute_group_modulus(groups) == 0


def encode_groups(groups: Sequence[ShardConfig]) -> bytes:
    """Groups as recorded on chain: ``u32be shard_id || u32be num_shard`` each."""
    return b"".join(g.shard_id.to_bytes(4, "big") + g.num_shard.to_bytes(4, "big") for g in groups)


def decode_groups(data: bytes) -> tuple[ShardConfig, ...]:
    """Inverse of ``encode_groups``; ``InvalidLayout`` on a malformed encoding."""
    if not data or len(data) % GROUP_ENCODING_BYTES or len(data) // GROUP_ENCODING_BYTES > MAX_GROUPS:
        raise InvalidLayout(f"group encoding must be 1..{MAX_GROUPS} x {GROUP_ENCODING_BYTES} bytes, got {len(data)}")
    try:
        return tuple(
            ShardConfig(int.from_bytes(data[o : o + 4], "big"), int.from_bytes(data[o + 4 : o + 8], "big"))
            for o in range(0, len(data), GROUP_ENCODING_BYTES)
        )
    except ZgError as exc:
        raise InvalidLayout(f"bad group in encoding: {exc.message}") from None


def compute_erasure_overhead(layout: StripeLayout, data_segments: int) -> float:
    """Stored segments (data + parity file) per data segment."""
    return (data_segments + layout.parity_segments) / data_segments


def _pow2_at_least(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()
