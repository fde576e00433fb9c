"""The challenge rules: which sector a seed picks, custody statements, answers (pure)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.core.hashing import keccak256
from zgos.core.signatures import address_of_private_key
from zgos.storage.spec.challenges import (
    ANSWER_WINDOW_BLOCKS,
    BLOCKHASH_WINDOW_BLOCKS,
    Custody,
    InvalidAnswer,
    InvalidCustody,
    RegistryDomain,
    compute_answer_deadline,
    compute_challenge_sector,
    compute_custody,
    compute_held_segments,
    compute_seed_block,
    is_answerable,
    recover_custody_signer,
    sign_custody,
    validate_answer,
    validate_custody,
)
from zgos.storage.spec.merkle import SECTORS_PER_SEGMENT, PromoteTree

SEGMENT = SECTORS_PER_SEGMENT


@st.composite
def custodies(draw: st.DrawFn) -> Custody:
    num_shard = 1 << draw(st.integers(0, 4))
    shard_id = draw(st.integers(0, num_shard - 1))
    segment = draw(st.integers(0, 10_000))
    # a file starts on a segment boundary or lies within one segment (storage.md §1.5)
    if draw(st.booleans()):
        start = segment * SEGMENT + draw(st.integers(1 if segment == 0 else 0, SEGMENT - 1))
        data = draw(st.integers(1, SEGMENT - start % SEGMENT))
    else:
        start = max(segment, 1) * SEGMENT
        data = draw(st.integers(1, 40 * SEGMENT))
    custody = Custody(draw(st.integers(0, 1000)), start, data, start + data + draw(st.integers(0, 5000)),
                      shard_id, num_shard, 10**6)
    try:
        validate_custody(custody)
    except InvalidCustody:
        return draw(st.nothing())
    return custody


@given(custodies(), st.binary(min_size=32, max_size=32), st.integers(0, 2**64))
def test_a_challenge_asks_for_a_data_sector_the_node_holds(custody: Custody, seed: bytes, challenge_id: int) -> None:
    sector = compute_challenge_sector(seed, challenge_id, custody)
    assert custody.start_sector <= sector < custody.start_sector + custody.data_sectors
    assert (sector // SEGMENT) % custody.num_shard == custody.shard_id


@given(custodies())
def test_every_held_segment_is_counted_once(custody: Custody) -> None:
    first, count = compute_held_segments(custody)
    segments = range(custody.start_sector // SEGMENT, (custody.start_sector + custody.data_sectors - 1) // SEGMENT + 1)
    held = [s for s in segments if s % custody.num_shard == custody.shard_id]
    assert count == len(held) and (not held or first == held[0])


def test_the_seed_picks_every_held_segment() -> None:
    custody = Custody(3, 4 * SEGMENT, 8 * SEGMENT, 20 * SEGMENT, 1, 2, 100)
    picked = {compute_challenge_sector(keccak256(bytes([i])), 1, custody) // SEGMENT for i in range(200)}
    assert picked == {5, 7, 9, 11}


def test_a_custody_outside_the_nodes_shard_is_refused() -> None:
    with pytest.raises(InvalidCustody, match="no data segment"):
        validate_custody(Custody(1, 4 * SEGMENT, 10, 5 * SEGMENT, 1, 2, 100))  # segment 4 is shard 0's
    with pytest.raises(InvalidCustody, match="shard"):
        validate_custody(Custody(1, 4 * SEGMENT, 10, 5 * SEGMENT, 0, 3, 100))
    with pytest.raises(InvalidCustody, match="outside the flow"):
        compute_custody(1, 4 * SEGMENT, 300, 4 * SEGMENT + 1, 0, 1, 100)


def test_custody_data_sectors_round_the_file_up_to_sectors() -> None:
    assert compute_custody(1, 1024, 257, 2048, 0, 1, 100).data_sectors == 2


def test_a_custody_signature_recovers_its_node() -> None:
    key = os.urandom(32)
    domain = RegistryDomain(31337, "0x" + "11" * 20)
    custody = Custody(1, 1024, 2, 2048, 0, 1, 100)
    signature = sign_custody(key, domain, custody)
    assert recover_custody_signer(domain, custody, signature) == address_of_private_key(key)
    other = RegistryDomain(31337, "0x" + "22" * 20)
    assert recover_custody_signer(other, custody, signature) != address_of_private_key(key)


@given(st.integers(0, 2**40), st.integers(0, 2**40))
def test_an_answer_is_accepted_only_between_the_seed_and_the_deadline(opened: int, block: int) -> None:
    seed_block = compute_seed_block(opened)
    assert is_answerable(seed_block, block) == (opened + 1 < block <= compute_answer_deadline(seed_block))
    assert compute_answer_deadline(seed_block) - seed_block < BLOCKHASH_WINDOW_BLOCKS
    assert compute_answer_deadline(seed_block) - seed_block == ANSWER_WINDOW_BLOCKS


@given(st.integers(1, 6), st.data())
def test_a_true_sector_and_path_are_accepted_and_any_change_refused(height: int, data: st.DataObject) -> None:
    sectors = [os.urandom(256) for _ in range(1 << height)]
    tree = PromoteTree([keccak256(s) for s in sectors])
    index = data.draw(st.integers(0, len(sectors) - 1))
    siblings = list(tree.proof(index).siblings)
    validate_answer(index, sectors[index], siblings, tree.root, len(sectors))
    with pytest.raises(InvalidAnswer):
        validate_answer(index, os.urandom(256), siblings, tree.root, len(sectors))
    with pytest.raises(InvalidAnswer):
        validate_answer(index ^ 1, sectors[index], siblings, tree.root, len(sectors))
    with pytest.raises(InvalidAnswer, match="hashes"):
        validate_answer(index, sectors[index], siblings[:-1], tree.root, len(sectors))
    with pytest.raises(InvalidAnswer, match="256 bytes"):
        validate_answer(index, sectors[index][:255], siblings, tree.root, len(sectors))


def test_custody_fields_beyond_64_bits_are_refused() -> None:
    with pytest.raises(InvalidCustody, match="64 bits"):
        validate_custody(Custody(2**64, 1024, 2, 2048, 0, 1, 100))
