"""PoRA pure core: sealing, recall ranges, scratchpad, iteration, difficulty (storage.md §2.4, §3)."""

from __future__ import annotations

import hashlib

import pytest
import sha3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgos.storage.spec.pora import (
    MAX_SECTORS_PER_SHARD_UNIT,
    SECTORS_PER_LOAD,
    SECTORS_PER_PRICING,
    InvalidRecallRange,
    RecallRange,
    compute_adjusted_target,
    compute_iteration_hit,
    compute_load_position,
    compute_pad_seed,
    compute_pora_hash,
    compute_recall_range,
    compute_scratchpad,
    compute_threshold,
)
from zgos.storage.spec.sealing import (
    BYTES_PER_SEAL,
    WORDS_PER_SEAL,
    InvalidSealInput,
    compute_seal_seed,
    seal,
    unseal,
    unseal_word,
)

hashes = st.binary(min_size=32, max_size=32)
# Whole 4 KiB seals built from a short pattern plus a position, so shrinking stays cheap.
seals = st.tuples(st.binary(min_size=1, max_size=64), st.integers(0, BYTES_PER_SEAL - 1)).map(
    lambda p: ((p[0] * BYTES_PER_SEAL)[: p[1]] + bytes(BYTES_PER_SEAL))[:BYTES_PER_SEAL]
)
seal_starts = st.integers(min_value=0, max_value=2**40).map(lambda s: s * 16)


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


def test_sealing_zero_data_by_hand() -> None:
    """For zero data the sealed words are the mask chain itself: w0 = seed, w_i = keccak(w_{i-1})."""
    miner, context = b"\x01" * 32, b"\x02" * 32
    sealed = seal(bytes(BYTES_PER_SEAL), miner, context, 32)
    word = keccak(miner + context + (32).to_bytes(32, "big"))
    for w in range(WORDS_PER_SEAL):
        assert sealed[32 * w : 32 * w + 32] == word
        word = keccak(word)


@settings(max_examples=50)
@given(seals, hashes, hashes, seal_starts)
def test_unseal_inverts_seal(data: bytes, miner: bytes, context: bytes, start: int) -> None:
    sealed = seal(data, miner, context, start)
    assert unseal(sealed, miner, context, start) == data


@settings(max_examples=30)
@given(seals, hashes, hashes, seal_starts, st.integers(min_value=0, max_value=WORDS_PER_SEAL - 1))
def test_any_word_unseals_from_its_predecessor_alone(
    data: bytes, miner: bytes, context: bytes, start: int, index: int
) -> None:
    sealed = seal(data, miner, context, start)
    assert unseal_word(sealed, index, miner, context, start) == data[32 * index : 32 * index + 32]


@settings(max_examples=30)
@given(seals, hashes, hashes, hashes, seal_starts)
def test_sealing_is_bound_to_the_miner(data: bytes, miner: bytes, other: bytes, context: bytes, start: int) -> None:
    if miner != other:
        assert seal(data, miner, context, start) != seal(data, other, context, start)


def test_seal_rejects_bad_input() -> None:
    with pytest.raises(InvalidSealInput, match="4096 bytes"):
        seal(b"x", b"\x00" * 32, b"\x00" * 32, 0)
    with pytest.raises(InvalidSealInput, match="multiple of 16"):
        seal(bytes(BYTES_PER_SEAL), b"\x00" * 32, b"\x00" * 32, 3)
    with pytest.raises(InvalidSealInput, match="32 bytes"):
        seal(bytes(BYTES_PER_SEAL), b"\x00" * 31, b"\x00" * 32, 0)


shard_configs = st.integers(min_value=0, max_value=5).flatmap(
    lambda bits: st.tuples(st.integers(min_value=0, max_value=2**bits - 1), st.just(2**bits))
)


@given(st.integers(min_value=SECTORS_PER_LOAD * 32, max_value=2**45), shard_configs)
def test_computed_recall_range_is_accepted_by_the_contract_rules(flow: int, shard: tuple[int, int]) -> None:
    shard_id, num_shards = shard
    recall = compute_recall_range(flow, shard_id, num_shards)
    assert recall.num_shards == num_shards
    recall.check(flow // SECTORS_PER_LOAD * SECTORS_PER_LOAD)
    assert recall.start_position % SECTORS_PER_PRICING == 0
    assert recall.mine_length <= MAX_SECTORS_PER_SHARD_UNIT * num_shards


@given(st.integers(min_value=1, max_value=2**20), shard_configs, hashes)
def test_recall_positions_stay_in_the_miners_shard(loads_per_shard: int, shard: tuple[int, int], seed: bytes) -> None:
    shard_id, num_shards = shard
    flow = loads_per_shard * num_shards * SECTORS_PER_LOAD
    recall = compute_recall_range(flow, shard_id, num_shards)
    position = recall.recall_position(seed)
    assert position % SECTORS_PER_LOAD == 0
    assert recall.start_position <= position < recall.start_position + recall.mine_length
    assert (position // SECTORS_PER_LOAD) % num_shards == shard_id


@pytest.mark.parametrize(
    ("recall", "max_end", "reason"),
    [
        (RecallRange(1024, 2**20, 0, 2**64 - 1), 2**26, "aligned"),
        (RecallRange(0, 2**21, 0, 2**64 - 1), 2**20, "beyond"),
        (RecallRange(0, 2**19, 0, 2**64 - 1), 2**20, "shorter"),
        (RecallRange(0, 2**20, 1, 2**64 - 1), 2**20, "overlaps"),
    ],
)
def test_invalid_recall_ranges_are_rejected(recall: RecallRange, max_end: int, reason: str) -> None:
    with pytest.raises(InvalidRecallRange, match=reason):
        recall.check(max_end)


def test_scratchpad_by_hand() -> None:
    seed = hashlib.blake2b(b"seed", digest_size=64).digest()
    pad, recall_seed = compute_scratchpad(seed)
    state = bytearray(seed)
    expected = b""
    for _ in range(256):
        state[0:32] = keccak(bytes(state))
        state[32:64] = keccak(bytes(state))
        expected += bytes(state)
    assert pad == expected and len(pad) == 16 * 1024
    assert recall_seed == keccak(bytes(state))


def test_pora_hash_by_hand() -> None:
    seed = hashlib.blake2b(b"x", digest_size=64).digest()
    pad, _ = compute_scratchpad(seed)
    sealed = bytes(range(256)) * 16
    mixed = bytes(a ^ b for a, b in zip(sealed, pad[4096 * 1 : 4096 * 2], strict=True))
    expected = hashlib.blake2b((5).to_bytes(32, "big") + seed + bytes(32) + mixed, digest_size=64).digest()[:32]
    assert compute_pora_hash(5, seed, pad, sealed) == expected


def test_iteration_finds_a_hit_with_an_easy_target_and_none_with_an_impossible_one() -> None:
    miner, nonce, subtask = b"\x07" * 32, b"\x08" * 32, b"\x09" * 32
    recall = compute_recall_range(64 * SECTORS_PER_LOAD, 0, 1)
    position = compute_load_position(miner, nonce, subtask, recall)
    loaded = [bytes([i]) * BYTES_PER_SEAL for i in range(64)]
    easy = compute_iteration_hit(miner, nonce, subtask, recall, position, loaded, 2**256 - 1)
    assert easy is not None and easy.seal_offset == 0 and easy.recall_position == position
    assert compute_iteration_hit(miner, nonce, subtask, recall, position, loaded, -1) is None
    missing = compute_iteration_hit(miner, nonce, subtask, recall, position, [None] * 64, 2**256 - 1)
    assert missing is None, "a miner that does not hold the data finds nothing"
    seed = compute_pad_seed(miner, nonce, subtask, recall)
    assert easy.pora_hash == compute_pora_hash(0, seed, compute_scratchpad(seed)[0], loaded[0])


def test_threshold_scales_with_shards() -> None:
    flow = 2**30
    full = compute_recall_range(flow, 0, 1)
    quarter = compute_recall_range(flow, 1, 4)
    target = 2**250
    assert compute_threshold(target, quarter, flow) * 4 == pytest.approx(compute_threshold(target, full, flow), rel=1e-9)


@given(
    st.integers(min_value=2**40, max_value=2**255),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=400),
)
def test_difficulty_moves_toward_target_by_at_most_2x(target: int, wanted: int, seen: int) -> None:
    adjusted = compute_adjusted_target(target, wanted, seen, 20, 0)
    scaled = target >> 16
    assert (scaled // 2) << 16 <= adjusted <= (scaled * 2) << 16
    if seen > wanted:
        assert adjusted <= (scaled << 16), "too many answers make mining harder"
    if seen == wanted:
        assert adjusted == scaled << 16


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(seals, max_size=10), miner=hashes, context=hashes)
def test_native_sealing_of_many_pieces_equals_the_definition(native_lanes: int, pieces: list[bytes], miner: bytes,
                                                               context: bytes) -> None:
    """``fasthash.seal_pieces`` (one piece per SIMD lane, or one at a time) seals as ``seal`` does."""
    from zgos.storage import fasthash

    seeds = b"".join(compute_seal_seed(miner, context, 16 * i) for i in range(len(pieces)))
    assert fasthash.seal_pieces(b"".join(pieces), seeds) == b"".join(
        seal(piece, miner, context, 16 * i) for i, piece in enumerate(pieces))
