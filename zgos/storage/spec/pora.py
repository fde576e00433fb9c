"""One PoRA iteration and the rules the ``PoraMine`` contract checks (storage.md §2.4, §3.1, §3.3).

A miner proves random access to the flow: from (miner id, nonce, subtask digest, recall range)
it derives a 16 KiB scratchpad and a recall position inside its range; it loads the 64 sealed
4 KiB pieces at that position, mixes each with the scratchpad, and wins when a Blake2b of the
mix is at most the scaled difficulty target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from zgos.core.hashing import HASH_BYTES, keccak256
from zgos.storage.spec.sealing import BYTES_PER_SEAL, SECTORS_PER_SEAL

SECTORS_PER_LOAD = 1024  # 256 KiB: the recall unit
SEALS_PER_LOAD = SECTORS_PER_LOAD // SECTORS_PER_SEAL  # 64
SECTORS_PER_PRICING = 2**25  # 8 GiB: mining ranges start on these boundaries
MAX_SECTORS_PER_SHARD_UNIT = 2**35  # 8 TiB
SCRATCHPAD_ROUNDS = 256
BYTES_PER_PAD_BLOCK = 64
BYTES_PER_SCRATCHPAD = SCRATCHPAD_ROUNDS * BYTES_PER_PAD_BLOCK  # 16 KiB = 4 seals
SEALS_PER_SCRATCHPAD = BYTES_PER_SCRATCHPAD // BYTES_PER_SEAL  # 4
U64_MASK = 2**64 - 1
U256_MAX = 2**256 - 1
DIFFICULTY_SCALE_BITS = 16


class InvalidRecallRange(ValueError):
    """A recall range breaks one of ``RecallRange.check``'s rules."""


def u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def blake2b_512(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=64).digest()


@dataclass(frozen=True)
class RecallRange:
    """The part of the flow a miner mines: ``mine_length`` sectors from ``start_position``,
    restricted to the shard ``shard_id`` of the 64-bit ``shard_mask``."""

    start_position: int
    mine_length: int
    shard_id: int
    shard_mask: int

    @property
    def num_shards(self) -> int:
        """``2 ** (number of zero bits in the 64-bit shard mask)``."""
        zero_bits = 64 - bin(self.shard_mask & U64_MASK).count("1")
        return int(2**zero_bits)

    def digest(self) -> bytes:
        """``keccak(abi.encode(start, length, shardId, shardMask))`` (four uint256 words)."""
        return keccak256(
            u256(self.start_position) + u256(self.mine_length) + u256(self.shard_id) + u256(self.shard_mask)
        )

    def check(self, max_end: int) -> None:
        """Raise ``InvalidRecallRange`` unless the range is one the contract accepts."""
        cap = MAX_SECTORS_PER_SHARD_UNIT * self.num_shards
        if self.start_position % SECTORS_PER_PRICING:
            raise InvalidRecallRange("start position is not 8 GiB (2^25 sectors) aligned")
        if self.start_position + self.mine_length > max_end:
            raise InvalidRecallRange("range ends beyond the minable flow")
        if self.mine_length > cap:
            raise InvalidRecallRange("range is longer than 2^35 sectors per shard unit")
        if self.mine_length < min(max_end, cap):
            raise InvalidRecallRange("range is shorter than the maximal allowed length")
        if self.shard_id & self.shard_mask:
            raise InvalidRecallRange("shard id overlaps the shard mask")

    def target_scale_x64(self, flow_length: int) -> int:
        """``(min(L, 2^35) << 64) / min(L / numShards, 2^35)``: a 1/k shard wins 1/k as often."""
        denominator = min(flow_length // self.num_shards, MAX_SECTORS_PER_SHARD_UNIT)
        if denominator == 0:
            raise InvalidRecallRange("flow is shorter than the number of shards")
        return (min(flow_length, MAX_SECTORS_PER_SHARD_UNIT) << 64) // denominator

    def recall_position(self, recall_seed: bytes) -> int:
        """The 256 KiB-aligned sector a scratchpad's final hash points at, inside the shard."""
        loads = self.mine_length // SECTORS_PER_LOAD
        if loads == 0:
            raise InvalidRecallRange("range holds no complete 256 KiB load")
        offset = ((int.from_bytes(recall_seed, "big") % loads) & self.shard_mask) | self.shard_id
        return self.start_position + offset * SECTORS_PER_LOAD


def compute_minable_length(flow_length: int) -> int:
    """Only whole 256 KiB loads of the flow can be mined."""
    return flow_length // SECTORS_PER_LOAD * SECTORS_PER_LOAD


def compute_recall_range(flow_length: int, shard_id: int, num_shards: int, start: int = 0) -> RecallRange:
    """The maximal valid range for a node with shard ``(shard_id, num_shards)`` (§3.1)."""
    if num_shards <= 0 or num_shards & (num_shards - 1) or not 0 <= shard_id < num_shards:
        raise InvalidRecallRange(f"bad shard config ({shard_id}, {num_shards})")
    minable = compute_minable_length(flow_length)
    mine_length = min(minable, MAX_SECTORS_PER_SHARD_UNIT * num_shards)
    aligned_start = min(start, minable - mine_length) // SECTORS_PER_PRICING * SECTORS_PER_PRICING
    return RecallRange(aligned_start, mine_length, shard_id, ~(num_shards - 1) & U64_MASK)


def compute_pad_seed(miner_id: bytes, nonce: bytes, subtask_digest: bytes, recall_range: RecallRange) -> bytes:
    """``blake2b_512(miner_id || nonce || subtask_digest || range_digest)``: 128 bytes in, 64 out."""
    for value in (miner_id, nonce, subtask_digest):
        if len(value) != HASH_BYTES:
            raise ValueError("miner id, nonce and subtask digest are 32 bytes each")
    return blake2b_512(miner_id + nonce + subtask_digest + recall_range.digest())


def compute_scratchpad(pad_seed: bytes) -> tuple[bytes, bytes]:
    """Return the 16 KiB scratchpad and the recall seed derived from ``pad_seed``.

    Each of 256 rounds replaces the first half of the 64-byte state by the keccak of the state,
    then the second half by the keccak of the updated state, and appends the state.
    The recall seed is the keccak of the final state.
    """
    state = pad_seed
    blocks = []
    for _ in range(SCRATCHPAD_ROUNDS):
        first = keccak256(state)
        state = first + state[HASH_BYTES:]
        state = first + keccak256(state)
        blocks.append(state)
    return b"".join(blocks), keccak256(state)


def compute_pora_hash(seal_offset: int, pad_seed: bytes, scratchpad: bytes, sealed: bytes) -> bytes:
    """``blake2b_512(u256(i) || pad_seed || 0^32 || (sealed XOR pad_i))[:32]`` for seal ``i``."""
    block = seal_offset % SEALS_PER_SCRATCHPAD
    pad = scratchpad[block * BYTES_PER_SEAL : (block + 1) * BYTES_PER_SEAL]
    # numpy: a 4 KiB XOR in ~1 us, 8x the int XOR of ``sealing.xor_bytes`` (made for 32-byte words);
    # imported here, as the storage CLI loads this module's constants and starts without numpy
    import numpy as np

    mixed = np.bitwise_xor(np.frombuffer(sealed, np.uint8), np.frombuffer(pad, np.uint8)).tobytes()
    return blake2b_512(u256(seal_offset) + pad_seed + bytes(32) + mixed)[:HASH_BYTES]


def compute_threshold(pora_target: int, recall_range: RecallRange, flow_length: int) -> int:
    """The largest winning hash: ``(poraTarget / targetScaleX64(flowLength)) << 64``."""
    return (pora_target // recall_range.target_scale_x64(flow_length)) << 64


@dataclass(frozen=True)
class Hit:
    """A winning seal of one iteration: what the on-chain answer is built from."""

    nonce: bytes
    recall_position: int
    seal_offset: int
    sealed_data: bytes
    pora_hash: bytes


def compute_iteration_hit(
    miner_id: bytes,
    nonce: bytes,
    subtask_digest: bytes,
    recall_range: RecallRange,
    load_position: int,
    seals: Sequence[bytes | None],
    threshold: int,
) -> Hit | None:
    """Mix the loaded seals (``None`` = not held, skipped) with the scratchpad; first winner."""
    pad_seed = compute_pad_seed(miner_id, nonce, subtask_digest, recall_range)
    scratchpad, _ = compute_scratchpad(pad_seed)
    for offset, sealed in enumerate(seals):
        if sealed is None:
            continue
        pora_hash = compute_pora_hash(offset, pad_seed, scratchpad, sealed)
        if int.from_bytes(pora_hash, "big") <= threshold:
            return Hit(nonce, load_position + offset * SECTORS_PER_SEAL, offset, sealed, pora_hash)
    return None


def compute_load_position(miner_id: bytes, nonce: bytes, subtask_digest: bytes, recall_range: RecallRange) -> int:
    """Where one iteration must load its 64 seals (a sector index, 256 KiB aligned)."""
    _, recall_seed = compute_scratchpad(compute_pad_seed(miner_id, nonce, subtask_digest, recall_range))
    return recall_range.recall_position(recall_seed)


def compute_subtask_index(context_digest: bytes, miner_id: bytes, n_subtasks: int) -> int:
    """Which subtask window a miner mines in: ``keccak(abi.encode(digest, minerId)) % n``."""
    return int.from_bytes(keccak256(context_digest + miner_id), "big") % n_subtasks


def compute_subtask_digest(context_digest: bytes, start_block_hash: bytes) -> bytes:
    """``keccak(abi.encode(context.digest, blockhash(subtaskStart)))``."""
    return keccak256(context_digest + start_block_hash)


def compute_miner_id(previous_block_hash: bytes, sender: bytes, seed: int) -> bytes:
    """``keccak(abi.encodePacked(blockhash(n-1), msg.sender, uint64 seed))``."""
    return keccak256(previous_block_hash + sender + seed.to_bytes(8, "big"))


def compute_adjusted_target(
    pora_target: int, target_submissions: int, current_submissions: int, adjust_ratio: int, min_difficulty: int
) -> int:
    """Move the target toward ``target_submissions`` answers per epoch (a 1/ratio step, at most 2×)."""
    scaled = pora_target >> DIFFICULTY_SCALE_BITS
    ceiling = U256_MAX >> DIFFICULTY_SCALE_BITS
    if current_submissions == 0:
        expected = ceiling
    else:
        expected = min(ceiling, scaled * target_submissions // current_submissions)
    adjusted = (scaled * (adjust_ratio - 1) + expected) // adjust_ratio
    adjusted = max(scaled // 2, min(adjusted, scaled * 2, ceiling))
    limit = U256_MAX // min_difficulty if min_difficulty else U256_MAX
    return min(adjusted << DIFFICULTY_SCALE_BITS, limit)


MAX_EMPTY_EPOCH_STEPS = 8


def compute_epoch_target(
    pora_target: int, target_submissions: int, last_submissions: int, empty_epochs: int,
    adjust_ratio: int, min_difficulty: int,
) -> int:
    """``PoraMine._syncEpoch``: adjust once for the last epoch with answers, then once per epoch
    that passed without any (at most ``MAX_EMPTY_EPOCH_STEPS``), so a too-hard target recovers."""
    target = compute_adjusted_target(pora_target, target_submissions, last_submissions, adjust_ratio, min_difficulty)
    for _ in range(min(empty_epochs, MAX_EMPTY_EPOCH_STEPS)):
        target = compute_adjusted_target(target, target_submissions, 0, adjust_ratio, min_difficulty)
    return target


def compute_owner_miner_id(owner: bytes) -> bytes:
    """``PoraMine.minerIdOf(owner)``: ``keccak(abi.encode(owner))``, known without the chain."""
    if len(owner) != 20:
        raise ValueError("an owner address is 20 bytes")
    return keccak256(bytes(12) + owner)
