"""Reward pools on anvil over random sequences of uploads, time passing (epochs) and claims:
the total paid never exceeds the fees deposited, and every payout is what the pure model of
``zgos.storage.spec.rewards`` predicts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import deploy_all
from zgos.storage.contracts import STORAGE_REWARD_RELEASE_S, FlowContract
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import Submission, SubmissionNode
from zgos.storage.spec.rewards import Pool, process_claim, process_fill

from .conftest import mining_plan


class Harness:
    """Reward + Market + Flow with an account standing in for the mining contract."""

    def __init__(self, chain: Chain, path: Path) -> None:
        plan = [item for item in mining_plan() if item.name != "PoraMine"]
        deployment = deploy_all(chain, devnet_role("deployer"), path, plan)
        self.chain = chain
        self.flow = FlowContract(chain, deployment.address("Flow"))
        self.reward = chain.contract("Reward", deployment.address("Reward"))
        self.mine: LocalAccount = Account.create()
        self.user: LocalAccount = Account.create()
        for account in (self.mine, self.user):
            chain.transact(devnet_role("deployer"), to=account.address, value=1000 * 10**18)
        chain.transact(devnet_role("deployer"), self.reward.functions.setMine(self.mine.address))
        self.beneficiaries = [Account.create().address for _ in range(3)]
        self.pools: dict[int, Pool] = {}
        self.deposited = 0
        self.paid = 0

    def timestamp(self, receipt: Receipt) -> int:
        return int(self.chain.w3.eth.get_block(receipt.block_number)["timestamp"])

    def upload(self, submission: Submission) -> None:
        result = self.flow.submit(self.user, [submission])
        raw = self.chain.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
        now = int(self.chain.w3.eth.get_block(raw["blockNumber"])["timestamp"])
        receipt = Receipt(result.tx_hash, int(raw["blockNumber"]), int(raw["gasUsed"]), raw)
        for event in receipt.events(self.reward, "RewardFilled"):
            index, amount = int(event["args"]["pricingIndex"]), int(event["args"]["amount"])
            self.pools[index] = process_fill(self.pools.get(index, Pool()), amount, now, STORAGE_REWARD_RELEASE_S)
        self.deposited += result.fee

    def wait(self, seconds: int) -> None:
        self.chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.chain.w3.provider.make_request("anvil_mine", ["0x1"])  # type: ignore[arg-type]

    def claim(self, index: int, who: int) -> None:
        beneficiary = self.beneficiaries[who]
        before = self.chain.balance(beneficiary)
        receipt = self.chain.transact(self.mine, self.reward.functions.claimMineReward(index, beneficiary, bytes(32)))
        received = self.chain.balance(beneficiary) - before
        pool, expected = process_claim(self.pools.get(index, Pool()), self.timestamp(receipt), STORAGE_REWARD_RELEASE_S)
        self.pools[index] = pool
        assert received == expected, "the payout is the model's: half the released, unpaid reward"
        self.paid += received

    def check(self) -> None:
        assert self.paid <= self.deposited
        assert self.chain.call(self.reward.functions.totalDistributed()) == self.paid
        assert self.chain.call(self.reward.functions.totalDeposited()) == self.deposited
        assert self.chain.balance(self.reward.address) == self.deposited - self.paid
        assert sum(self.chain.balance(b) for b in self.beneficiaries) == self.paid


@pytest.fixture(scope="module")
def harness(mine_chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(mine_chain, tmp_path_factory.mktemp("reward") / "deployment.json")


CHUNK_SECTORS = 1 << 25
operation = st.one_of(
    st.tuples(st.just("upload"), st.integers(1, 600_000)),
    st.tuples(st.just("big-upload"), st.just(0)),  # one whole 8 GiB pricing chunk (a fake root)
    st.tuples(st.just("wait"), st.integers(1, STORAGE_REWARD_RELEASE_S * 2)),
    st.tuples(st.just("claim"), st.integers(0, 7)),
)


# Few, short sequences: every operation is a transaction plus balance reads, and the suite
# shares two cores with others (state carries over between examples, so they add up).
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(operation, min_size=1, max_size=6))
def test_total_paid_never_exceeds_fees_deposited(harness: Harness, ops: list[tuple[str, int]]) -> None:
    for kind, value in ops:
        if kind == "upload":
            harness.upload(FileTree.from_bytes(os.urandom(value)).submission())
        elif kind == "big-upload":
            harness.upload(Submission(CHUNK_SECTORS * 256, b"", (SubmissionNode(os.urandom(32), 25),)))
        elif kind == "wait":
            harness.wait(value)
        else:
            harness.claim(value % 4, value % 3)
        assert harness.paid <= harness.deposited
    harness.check()
