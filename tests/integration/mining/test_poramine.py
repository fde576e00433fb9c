"""PoraMine on anvil: a valid answer pays the miner's beneficiary; every bad answer is refused
with a custom error naming what is wrong."""

from __future__ import annotations

import dataclasses
import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.storage.spec.answer import PoraAnswer, is_zero_seal
from zgos.storage.spec.pora import (
    compute_epoch_target,
    compute_owner_miner_id,
    compute_recall_range,
)

from .flowsim import LocalFlow

FILE_BYTES = 300_000  # lands on sector 1024: load 0 is padding, load 1 is file data
DAY_S = 86_400


@pytest.fixture
def flow(mine_chain: Chain, mine_deployment: Deployment) -> LocalFlow:
    return LocalFlow(mine_chain, mine_deployment)


def funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
    return account


@pytest.fixture
def miner(flow: LocalFlow) -> LocalAccount:
    account = funded(flow.chain)
    flow.chain.transact(account, flow.mine.functions.register(account.address))
    return account


def submit(flow: LocalFlow, account: LocalAccount, answer: PoraAnswer):  # type: ignore[no-untyped-def]
    return flow.chain.transact(account, flow.mine.functions.submit(answer.to_abi()))


def uploaded_epoch(flow: LocalFlow, size: int = FILE_BYTES):  # type: ignore[no-untyped-def]
    user = funded(flow.chain)
    flow.upload(user, os.urandom(size))
    return flow.open_epoch()


def test_valid_answer_pays_the_beneficiary_from_the_pricing_chunk_pool(flow: LocalFlow) -> None:
    owner, beneficiary = funded(flow.chain), Account.create().address
    flow.chain.transact(owner, flow.mine.functions.register(beneficiary))
    context = uploaded_epoch(flow)
    flow.chain.w3.provider.make_request("evm_increaseTime", [DAY_S])  # type: ignore[arg-type]
    flow.mine_blocks(1)
    answer = flow.find_answer(owner, context)
    claimable = flow.chain.call(flow.reward.functions.claimableReward(0))
    receipt = submit(flow, owner, answer)
    paid = receipt.events(flow.mine, "NewSubmission")[0]["args"]["reward"]
    assert paid > 0 and abs(paid - claimable // 2) <= claimable // 1000, "half the claimable reward"
    assert flow.chain.balance(beneficiary) == paid
    assert flow.chain.call(flow.reward.functions.claimedBy(beneficiary)) == paid
    assert flow.chain.call(flow.mine.functions.lastRewardedEpoch(answer.miner_id)) == context.epoch


def test_second_answer_in_the_same_epoch_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    context = uploaded_epoch(flow)
    submit(flow, miner, flow.find_answer(miner, context))
    with pytest.raises(TxReverted, match="AlreadyRewarded"):
        submit(flow, miner, flow.find_answer(miner, context))


def test_wrong_merkle_proof_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    answer = flow.find_answer(miner, uploaded_epoch(flow))
    proof = list(answer.merkle_proof)
    proof[2] = bytes(32)
    with pytest.raises(TxReverted, match="WrongProof"):
        submit(flow, miner, dataclasses.replace(answer, merkle_proof=tuple(proof)))
    with pytest.raises(TxReverted, match="WrongProof"):
        submit(flow, miner, dataclasses.replace(answer, merkle_proof=answer.merkle_proof[:-1]))


def test_sealed_data_of_a_miner_without_the_data_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    answer = flow.find_answer(miner, uploaded_epoch(flow))
    with pytest.raises(TxReverted, match="WrongProof"):
        submit(flow, miner, dataclasses.replace(answer, sealed_data=os.urandom(4096)))


def test_answer_sealed_by_another_miner_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    other = funded(flow.chain)
    flow.chain.transact(other, flow.mine.functions.register(other.address))
    answer = flow.find_answer(other, uploaded_epoch(flow))
    stolen = dataclasses.replace(answer, miner_id=compute_owner_miner_id(bytes.fromhex(miner.address[2:])))
    with pytest.raises(TxReverted, match="WrongProof"):
        submit(flow, miner, stolen)


def test_stale_context_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    answer = flow.find_answer(miner, uploaded_epoch(flow))
    flow.open_epoch()  # a new epoch starts before the answer lands
    with pytest.raises(TxReverted, match="StaleContext"):
        submit(flow, miner, answer)


def test_data_outside_the_sealing_epoch_range_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    answer = flow.find_answer(miner, uploaded_epoch(flow))
    with pytest.raises(TxReverted, match="DataOutOfRange"):
        submit(flow, miner, dataclasses.replace(answer, sealed_context_digest=os.urandom(32)))


def test_recall_range_shorter_than_the_flow_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    context = uploaded_epoch(flow)
    answer = flow.find_answer(miner, context)
    short = compute_recall_range(1024 + 1, 0, 1)  # one load instead of the two minable ones
    with pytest.raises(TxReverted, match="range shorter than allowed"):
        submit(flow, miner, dataclasses.replace(answer, recall_range=short))


def test_answer_that_misses_the_target_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    context = uploaded_epoch(flow)
    answer = flow.find_answer(miner, context)  # wins at difficulty 1
    flow.chain.transact(devnet_role("deployer"), flow.mine.functions.setDifficulty(2**250))
    with pytest.raises(TxReverted, match="MissedTarget"):
        submit(flow, miner, answer)


def test_answer_on_an_all_zero_piece_is_rejected(flow: LocalFlow, miner: LocalAccount) -> None:
    answer = flow.find_answer(miner, uploaded_epoch(flow), want=is_zero_seal)
    with pytest.raises(TxReverted, match="ZeroData"):
        submit(flow, miner, answer)


def test_answer_of_an_unregistered_miner_is_rejected(flow: LocalFlow) -> None:
    stranger = funded(flow.chain)
    answer = flow.find_answer(stranger, uploaded_epoch(flow))
    with pytest.raises(TxReverted, match="UnknownMiner"):
        submit(flow, stranger, answer)


def test_miner_id_is_derived_from_the_sender_and_registration_is_idempotent(flow: LocalFlow) -> None:
    owner = funded(flow.chain)
    miner_id = compute_owner_miner_id(bytes.fromhex(owner.address[2:]))
    assert flow.chain.call(flow.mine.functions.minerIdOf(owner.address)) == miner_id
    first, second = Account.create().address, Account.create().address
    flow.chain.transact(owner, flow.mine.functions.register(first))
    flow.chain.transact(owner, flow.mine.functions.register(first))
    assert flow.chain.call(flow.mine.functions.beneficiaries(miner_id)) == first
    flow.chain.transact(owner, flow.mine.functions.register(second))
    assert flow.chain.call(flow.mine.functions.beneficiaries(miner_id)) == second
    with pytest.raises(TxReverted, match="BadParameter"):
        flow.chain.transact(owner, flow.mine.functions.register("0x" + "00" * 20))


def test_difficulty_moves_toward_the_target_answers_per_epoch(flow: LocalFlow, miner: LocalAccount) -> None:
    flow.chain.transact(devnet_role("deployer"), flow.mine.functions.setDifficulty(2))
    context = uploaded_epoch(flow)
    before = flow.chain.call(flow.mine.functions.poraTarget())
    submit(flow, miner, flow.find_answer(miner, context))  # 1 answer, 10 wanted: easier next epoch
    nxt = flow.open_epoch()
    worker = flow.chain.call(flow.mine.functions.computeWorkerContext(bytes(32)))
    assert worker[2] == compute_epoch_target(before, 10, 1, nxt.epoch - context.epoch - 1, 20, 1)
    assert worker[2] > before
