"""PoRA answers, epoch ranges, reward pools and epoch difficulty: pure rules (storage.md §2.3,
§2.4, §3.2, §3.4)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.core.hashing import keccak256
from zgos.storage.spec.answer import (
    EMPTY_HASH,
    EpochRange,
    NoSealingContext,
    compute_answer,
    compute_epoch_ranges,
    compute_flow_depth,
    compute_proof_root,
    compute_seal_proof,
    get_sealing_context,
    is_zero_seal,
)
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import FlowItem, FlowTree, compute_flow_items, compute_sector_data_root
from zgos.storage.spec.pora import (
    MAX_EMPTY_EPOCH_STEPS,
    U256_MAX,
    Hit,
    compute_adjusted_target,
    compute_epoch_target,
    compute_owner_miner_id,
    compute_recall_range,
)
from zgos.storage.spec.rewards import (
    Pool,
    compute_claimable,
    compute_released,
    process_claim,
    process_fill,
)

RELEASE_S = 1000


def test_epoch_ranges_chain_from_zero_and_skip_unmineable_epochs() -> None:
    a, b = keccak256(b"a"), keccak256(b"b")
    ranges = compute_epoch_ranges([(a, 10), (EMPTY_HASH, 20), (b, 40)])
    assert ranges == [EpochRange(a, 0, 10), EpochRange(b, 10, 40)]


@given(st.lists(st.integers(1, 500), min_size=1, max_size=8), st.integers(0, 200))
def test_every_seal_inside_the_recorded_flow_has_exactly_one_sealing_context(steps: list[int], seal_index: int) -> None:
    lengths, total = [], 0
    for step in steps:
        total += step
        lengths.append(total)
    ranges = compute_epoch_ranges([(keccak256(bytes([i])), n) for i, n in enumerate(lengths)])
    seal_end = (seal_index + 1) * 16
    owners = [r for r in ranges if r.start < seal_end <= r.end]
    if seal_end <= total:
        assert get_sealing_context(ranges, seal_index) == owners[0] and len(owners) == 1
    else:
        with pytest.raises(NoSealingContext):
            get_sealing_context(ranges, seal_index)


def test_zero_seal_detection() -> None:
    assert is_zero_seal(bytes(4096))
    assert not is_zero_seal(bytes(4095) + b"\x01")


def flow_of(files: list[bytes]) -> tuple[bytearray, list[FlowItem], int, bytes]:
    """Place files in a flow the way Flow.sol does; return its sectors, items, length and root."""
    tree, flat, submissions = FlowTree(), bytearray(256), []
    for seq, data in enumerate(files):
        submission = FileTree.from_bytes(data).submission()
        placement = tree.append_submission(submission)
        flat.extend(bytes(placement.end * 256 - len(flat)))
        flat[placement.start * 256 : placement.start * 256 + len(data)] = data
        submissions.append((seq, submission))
    return flat, compute_flow_items(submissions), tree.length, tree.root


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 40_000), min_size=1, max_size=4), st.data())
def test_seal_proof_folds_to_the_flow_root(sizes: list[int], data: st.DataObject) -> None:
    flat, items, length, root = flow_of([os.urandom(n) for n in sizes])

    def inner(item: FlowItem, position: int, height: int) -> bytes:
        return compute_sector_data_root(lambda first, count: bytes(flat[first * 256 : (first + count) * 256]),
                                        position, height)

    seal_index = data.draw(st.integers(1, max(1, length // 16 - 1)))
    proof = compute_seal_proof(items, seal_index, length, inner)
    piece = bytes(flat[seal_index * 4096 : (seal_index + 1) * 4096]).ljust(4096, b"\0")
    if length >= 32:
        assert len(proof) == compute_flow_depth(length) - 4
        assert compute_proof_root(piece, seal_index, proof) == root
        assert compute_proof_root(bytes(4095) + b"\x01", seal_index, proof) != root


def test_answer_checks_its_fields() -> None:
    recall = compute_recall_range(4096, 0, 1)
    hit = Hit(os.urandom(32), 1024 + 48, 3, os.urandom(4096), bytes(32))
    answer = compute_answer(hit, os.urandom(32), os.urandom(32), recall, os.urandom(32), [bytes(32)])
    assert answer.to_abi()[4] == 1024 + 48 and len(answer.to_abi()[7]) == 128  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seal offset"):
        compute_answer(Hit(hit.nonce, 1024 + 48, 2, hit.sealed_data, bytes(32)), bytes(32), bytes(32), recall, bytes(32), [])
    with pytest.raises(ValueError, match="32 bytes"):
        compute_answer(hit, b"short", bytes(32), recall, bytes(32), [])


def test_owner_miner_id_is_keccak_of_the_abi_encoded_address() -> None:
    owner = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8".lower())
    assert compute_owner_miner_id(owner) == keccak256(bytes(12) + owner)
    with pytest.raises(ValueError):
        compute_owner_miner_id(b"\x01" * 19)


# --- reward pools --------------------------------------------------------------------------

fills = st.lists(st.tuples(st.integers(0, 10**20), st.integers(1, 3 * RELEASE_S), st.booleans()), max_size=20)


@given(fills)
def test_total_paid_never_exceeds_fees_deposited_in_the_model(ops: list[tuple[int, int, bool]]) -> None:
    pool, now, deposited, paid = Pool(), 1, 0, 0
    for amount, wait, claim in ops:
        now += wait
        if claim:
            pool, payout = process_claim(pool, now, RELEASE_S)
            paid += payout
        else:
            pool = process_fill(pool, amount, now, RELEASE_S)
            deposited += amount
        assert paid == pool.distributed <= compute_released(pool, now, RELEASE_S) <= pool.total == deposited


@given(st.integers(1, 10**24), st.integers(0, 3 * RELEASE_S), st.integers(0, 3 * RELEASE_S))
def test_release_is_linear_monotone_and_complete(amount: int, t1: int, t2: int) -> None:
    pool = process_fill(Pool(), amount, 100, RELEASE_S)
    early, late = sorted((t1, t2))
    assert compute_released(pool, 100 + early, RELEASE_S) <= compute_released(pool, 100 + late, RELEASE_S)
    assert compute_released(pool, 100, RELEASE_S) == 0
    assert compute_released(pool, 100 + RELEASE_S, RELEASE_S) == amount
    assert compute_released(pool, 100 + RELEASE_S // 2, RELEASE_S) == amount * (RELEASE_S // 2) // RELEASE_S


def test_a_fill_restarts_the_schedule_without_taking_back_released_reward() -> None:
    pool = process_fill(Pool(), 1000, 1, RELEASE_S)
    pool = process_fill(pool, 1000, 1 + RELEASE_S // 2, RELEASE_S)
    assert compute_released(pool, 1 + RELEASE_S // 2, RELEASE_S) == 500
    assert compute_released(pool, 1 + RELEASE_S // 2 + RELEASE_S, RELEASE_S) == 2000
    pool, paid = process_claim(pool, 1 + RELEASE_S // 2, RELEASE_S)
    assert paid == 250 and compute_claimable(pool, 1 + RELEASE_S // 2, RELEASE_S) == 250


# --- epoch difficulty ----------------------------------------------------------------------


@given(st.integers(2**40, 2**255), st.integers(1, 100), st.integers(0, 400), st.integers(0, 50))
def test_epoch_target_eases_after_empty_epochs_within_bounds(target: int, wanted: int, seen: int, empty: int) -> None:
    once = compute_adjusted_target(target, wanted, seen, 20, 0)
    after = compute_epoch_target(target, wanted, seen, empty, 20, 0)
    assert after >= once, "epochs without answers never make mining harder"
    assert after <= min(U256_MAX, (once >> 16) * 2 ** (min(empty, MAX_EMPTY_EPOCH_STEPS)) << 16)
    assert compute_epoch_target(target, wanted, seen, empty, 20, 10**6) <= U256_MAX // 10**6
