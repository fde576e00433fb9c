"""The Solidity PoRA rules (PoraLib via PoraVerifier) agree with the Python core, on anvil."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.core.hashing import keccak256, keccak256_pair
from zgos.storage.spec.pora import (
    SECTORS_PER_LOAD,
    compute_pad_seed,
    compute_pora_hash,
    compute_recall_range,
    compute_scratchpad,
)
from zgos.storage.spec.sealing import BYTES_PER_SEAL, seal, unseal

SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def verifier(chain: Chain, deployment: Deployment) -> Contract:
    return chain.contract("PoraVerifier", deployment.address("PoraVerifier"))


def words(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]


@pytest.mark.parametrize("length", [1, 127, 128, 129, 256, 4224])
def test_blake2b_on_chain_matches_hashlib(verifier: Contract, length: int) -> None:
    message = bytes((7 * i + 3) % 251 for i in range(length))
    assert verifier.functions.blake2b512(message).call() == hashlib.blake2b(message, digest_size=64).digest()


@SLOW
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.integers(0, 63))
def test_recall_and_pora_hash_match_python(verifier: Contract, miner: bytes, nonce: bytes, offset: int) -> None:
    subtask = keccak256(miner + nonce)
    recall = compute_recall_range(4096 * SECTORS_PER_LOAD, 1, 2)
    sealed = bytes((i * 13 + offset) % 256 for i in range(BYTES_PER_SEAL))
    seed = compute_pad_seed(miner, nonce, subtask, recall)
    pad, recall_seed = compute_scratchpad(seed)
    onchain = verifier.functions.compute(
        miner, nonce, subtask,
        (recall.start_position, recall.mine_length, recall.shard_id, recall.shard_mask),
        offset, words(sealed),
    ).call()
    assert onchain[0] == recall_seed
    assert onchain[1] == recall.recall_position(recall_seed) + offset * 16
    assert onchain[2] == compute_pora_hash(offset, seed, pad, sealed)


def test_unseal_on_chain_matches_python(verifier: Contract) -> None:
    data = bytes(range(256)) * 16
    miner, context = b"\x11" * 32, b"\x22" * 32
    sealed = seal(data, miner, context, 4096)
    assert b"".join(verifier.functions.unseal(words(sealed), miner, context, 4096).call()) == data
    assert unseal(sealed, miner, context, 4096) == data


def test_seal_merkle_path_folds_to_the_root(verifier: Contract) -> None:
    data = bytes((i * 29) % 256 for i in range(BYTES_PER_SEAL))
    leaves = [keccak256(data[i : i + 256]) for i in range(0, BYTES_PER_SEAL, 256)]
    while len(leaves) > 1:
        leaves = [keccak256_pair(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
    proof = [keccak256(bytes([i])) for i in range(5)]
    recall_position = 16 * 0b10110  # seal index 22: directions right, left, right, right, left... by bits
    node, index = leaves[0], recall_position // 16
    for level, sibling in enumerate(proof):
        node = keccak256_pair(node, sibling) if (index >> level) & 1 == 0 else keccak256_pair(sibling, node)
    assert verifier.functions.recoverMerkleRoot(words(data), recall_position, proof).call() == node


def test_bad_ranges_revert_with_the_rule_broken(chain: Chain, verifier: Contract) -> None:
    with pytest.raises(TxReverted, match="start not 8 GiB aligned"):
        chain.call(verifier.functions.checkRange((1024, 2**20, 0, 2**64 - 1), 2**26))
    with pytest.raises(TxReverted, match="shard id overlaps mask"):
        chain.call(verifier.functions.checkRange((0, 2**20, 1, 2**64 - 1), 2**20))
