"""Building and checking the on-chain PoRA answer (storage.md §3.4) and the epoch ranges that
tell which context sealed a piece of the flow (§2.1, §3.2).

An answer carries the winning sealed 4 KiB piece, the context digest that sealed it, and the
Merkle path of that piece from height 4 (16 sectors) up to the flow root of the mining context.
``PoraMine`` unseals the piece, folds it to the root and re-runs the PoRA iteration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zgos.core.hashing import HASH_BYTES, keccak256, keccak256_pair
from zgos.storage.spec.flow import FlowItem, InnerRoot, compute_flow_subtree_root
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, next_pow2
from zgos.storage.spec.pora import SECTORS_PER_LOAD, Hit, RecallRange
from zgos.storage.spec.sealing import BYTES_PER_SEAL, BYTES_PER_WORD, SECTORS_PER_SEAL

SEAL_TREE_HEIGHT = 4  # a seal is the subtree of 2^4 = 16 sectors
EMPTY_HASH = keccak256(b"")  # the digest of an epoch that cannot be mined


class NoSealingContext(ValueError):
    """No recorded epoch covers the piece yet: it cannot be sealed."""


@dataclass(frozen=True)
class EpochRange:
    """A mineable epoch: its context digest seals flow sectors ``(start, end]`` by seal end."""

    digest: bytes
    start: int
    end: int


def compute_epoch_ranges(epochs: Sequence[tuple[bytes, int]]) -> list[EpochRange]:
    """The ranges ``Flow`` records, from its ``NewEpoch`` events ``(context digest, flow length)``
    in order: each mineable epoch covers from the previous mineable epoch's end (0 first) to its
    flow length; unmineable epochs (digest ``keccak("")``) record nothing."""
    ranges: list[EpochRange] = []
    start = 0
    for digest, flow_length in epochs:
        if digest == EMPTY_HASH:
            continue
        ranges.append(EpochRange(digest, start, flow_length))
        start = flow_length
    return ranges


def get_sealing_context(ranges: Sequence[EpochRange], seal_index: int) -> EpochRange:
    """The epoch whose range holds the seal's end: ``start < 16*(s+1) <= end``.
    Raises ``NoSealingContext`` if none does (the epoch holding it is not recorded yet)."""
    seal_end = (seal_index + 1) * SECTORS_PER_SEAL
    for epoch_range in ranges:
        if epoch_range.start < seal_end <= epoch_range.end:
            return epoch_range
    raise NoSealingContext(f"no recorded epoch covers seal {seal_index}")


def is_zero_seal(data: bytes) -> bool:
    """An all-zero piece (flow padding or gaps): ``PoraMine`` refuses answers on it."""
    return data.count(0) == len(data)


def compute_flow_depth(flow_length: int) -> int:
    """Height of the complete flow tree over ``next_pow2(flow_length)`` sectors."""
    return next_pow2(flow_length).bit_length() - 1


def compute_seal_root(data: bytes) -> bytes:
    """Root of the 16 sector leaves of one unsealed 4 KiB piece."""
    if len(data) != BYTES_PER_SEAL:
        raise ValueError(f"a seal is {BYTES_PER_SEAL} bytes, got {len(data)}")
    level = [keccak256(data[i : i + BYTES_PER_SECTOR]) for i in range(0, BYTES_PER_SEAL, BYTES_PER_SECTOR)]
    while len(level) > 1:
        level = [keccak256_pair(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def compute_seal_proof(items: Sequence[FlowItem], seal_index: int, flow_length: int, inner: InnerRoot) -> list[bytes]:
    """Siblings of seal ``seal_index`` from height 4 up to the root of the flow of
    ``flow_length`` sectors described by ``items`` (a prefix of the flow)."""
    depth = compute_flow_depth(flow_length)
    proof = []
    for level in range(SEAL_TREE_HEIGHT, depth):
        sibling = ((seal_index * SECTORS_PER_SEAL >> level) ^ 1) << level
        proof.append(compute_flow_subtree_root(items, sibling, level, inner))
    return proof


def compute_path_root(node: bytes, index: int, proof: Sequence[bytes]) -> bytes:
    """Fold ``node``, the subtree at ``index`` on its level, up its siblings ``proof``: bit
    ``i`` of ``index`` set means the node is the right child at step ``i``
    (``FlowMerkle.foldPath``, shared by ``PoraMine`` and ``AlignmentRegistry``)."""
    for level, sibling in enumerate(proof):
        node = keccak256_pair(node, sibling) if (index >> level) & 1 == 0 else keccak256_pair(sibling, node)
    return node


def compute_proof_root(data: bytes, seal_index: int, proof: Sequence[bytes]) -> bytes:
    """Fold an unsealed piece up its proof (``PoraLib.recoverMerkleRoot``)."""
    return compute_path_root(compute_seal_root(data), seal_index, proof)


@dataclass(frozen=True)
class PoraAnswer:
    """``PoraMine.PoraAnswer``: what a miner submits for one winning seal."""

    context_digest: bytes
    nonce: bytes
    miner_id: bytes
    recall_range: RecallRange
    recall_position: int
    seal_offset: int
    sealed_context_digest: bytes
    sealed_data: bytes
    merkle_proof: tuple[bytes, ...]

    def to_abi(self) -> tuple[object, ...]:
        r = self.recall_range
        words = [self.sealed_data[i : i + BYTES_PER_WORD] for i in range(0, BYTES_PER_SEAL, BYTES_PER_WORD)]
        return (
            self.context_digest, self.nonce, self.miner_id,
            (r.start_position, r.mine_length, r.shard_id, r.shard_mask),
            self.recall_position, self.seal_offset, self.sealed_context_digest, words, list(self.merkle_proof),
        )


def compute_answer(
    hit: Hit, context_digest: bytes, miner_id: bytes, recall_range: RecallRange,
    sealed_context_digest: bytes, merkle_proof: Sequence[bytes],
) -> PoraAnswer:
    """The answer for a hit; checks the sizes the contract takes."""
    for value in (context_digest, miner_id, sealed_context_digest, hit.nonce):
        if len(value) != HASH_BYTES:
            raise ValueError("digests, nonce and miner id are 32 bytes each")
    if len(hit.sealed_data) != BYTES_PER_SEAL:
        raise ValueError(f"a seal is {BYTES_PER_SEAL} bytes")
    if hit.recall_position % SECTORS_PER_SEAL or hit.recall_position // SECTORS_PER_LOAD * SECTORS_PER_LOAD + hit.seal_offset * SECTORS_PER_SEAL != hit.recall_position:
        raise ValueError("recall position does not match the seal offset")
    return PoraAnswer(
        context_digest, hit.nonce, miner_id, recall_range, hit.recall_position, hit.seal_offset,
        sealed_context_digest, hit.sealed_data, tuple(merkle_proof),
    )
