"""The miner inside a storage node, on anvil: an upload's fees end up paid to the miner's
beneficiary; a restart mid-epoch never submits twice; a node whose data was deleted cannot
produce accepted answers."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.jsonrpc import Caller
from zgos.runtime.netutil import wait_until
from zgos.storage.client import StorageClient
from zgos.storage.contracts import PoraMine, Reward
from zgos.storage.miner.config import MinerConfig
from zgos.storage.miner.loop import Miner
from zgos.storage.miner.rpc import register_miner_rpc
from zgos.storage.miner.store import MinerStore

from .conftest import EPOCH_BLOCKS

FILE_BYTES = 300_000
DAY_S = 86_400


@dataclass
class Setup:
    chain: Chain
    deployment: Deployment
    node: RunningNode
    miner_key: LocalAccount
    beneficiary: str
    data_dir: Path

    def new_miner(self, cpu: float = 0.5) -> Miner:
        config = MinerConfig(self.deployment.address("PoraMine"), threads=1, cpu_fraction=cpu, poll_s=0.1,
                             beneficiary=self.beneficiary)
        return Miner(self.node.node, self.chain, self.miner_key, config)

    def next_epoch(self) -> None:
        self.chain.w3.provider.make_request("evm_increaseTime", [DAY_S])  # type: ignore[arg-type]
        self.chain.w3.provider.make_request("anvil_mine", [hex(EPOCH_BLOCKS + 1)])  # type: ignore[arg-type]

    def submissions(self) -> list[int]:
        mine = PoraMine(self.chain, self.deployment.address("PoraMine"))
        return mine.submission_epochs(0, self.chain.block_number())


def funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
    return account


@pytest.fixture
def setup(mine_chain: Chain, mine_deployment: Deployment, tmp_path: Path) -> Iterator[Setup]:
    node = start_node(tmp_path / "node", mine_chain, mine_deployment)
    setup = Setup(mine_chain, mine_deployment, node, funded(mine_chain), Account.create().address, tmp_path / "node")
    yield setup
    setup.node.stop()


def upload(setup: Setup, tmp_path: Path) -> int:
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(FILE_BYTES))
    user = funded(setup.chain)
    with StorageClient([setup.node.url], setup.chain, setup.deployment.address("Flow"), user) as client:
        client.upload(path)
    return Reward(setup.chain, setup.deployment.address("Reward")).total_deposited()


def accepted(miner: Miner, n: int = 1, timeout: float = 30) -> None:
    assert wait_until(lambda: miner.status()["answersAccepted"] >= n, timeout), f"{n} accepted answer(s): {miner.status()}"


def test_upload_fees_end_up_paid_to_the_miner_beneficiary(setup: Setup, tmp_path: Path) -> None:
    fee = upload(setup, tmp_path)
    setup.next_epoch()
    miner = setup.new_miner()
    miner.start()
    try:
        accepted(miner)
        status = miner.status()
    finally:
        miner.close()
    assert status["registered"] and status["sealedPieces"] > 0 and status["iterations"] > 0
    earned = status["totalReward"]
    assert 0 < earned <= fee
    assert setup.chain.balance(setup.beneficiary) == earned, "the reward reached the beneficiary"


def test_miner_restart_mid_epoch_does_not_double_submit(setup: Setup, tmp_path: Path) -> None:
    upload(setup, tmp_path)
    setup.next_epoch()
    miner = setup.new_miner()
    miner.start()
    accepted(miner)
    epoch = miner.status()["lastReward"]["epoch"]
    miner.close()
    # A crash between recording an answer and sending it, in the epoch after: that one must
    # not be answered again either.
    setup.next_epoch()
    restarted = setup.new_miner()
    context = restarted.mine.worker_context(restarted.miner_id).context
    crashed_epoch = context.epoch
    MinerStore(setup.data_dir / "miner.sqlite").record_answer(crashed_epoch, context.digest, 1024, "sending")
    restarted.start()
    try:
        settled = lambda: restarted.store.answer(crashed_epoch)["state"] == "unknown"  # type: ignore[index]  # noqa: E731
        assert wait_until(settled, 10), "the crashed answer is settled from the chain"
        time.sleep(2)  # many control ticks: nothing is submitted in either epoch
        assert setup.submissions() == [epoch]
        assert restarted.status()["miningEpoch"] is None, "no mining in an epoch already answered"
        setup.next_epoch()  # a new epoch: mining resumes
        accepted(restarted, 2)
    finally:
        restarted.close()
    assert len(setup.submissions()) == 2 and len(set(setup.submissions())) == 2


def test_node_whose_data_was_deleted_cannot_produce_accepted_answers(setup: Setup, tmp_path: Path) -> None:
    upload(setup, tmp_path)
    setup.node.stop()
    shutil.rmtree(setup.data_dir)  # the operator deletes the node's data (store and sealed pieces)
    setup.node = start_node(setup.data_dir, setup.chain, setup.deployment)
    assert wait_until(lambda: setup.node.node.store.next_seq() == 1, 10), "log sync"
    setup.next_epoch()
    miner = setup.new_miner(cpu=1.0)
    miner.start()
    try:
        assert wait_until(lambda: miner.status()["iterations"] > 200, 30), "some PoRA iterations"
        status = miner.status()
    finally:
        miner.close()
    assert status["sealedPieces"] == 0, "nothing held, nothing sealed"
    assert status["answersSubmitted"] == 0 and setup.submissions() == []


def test_miner_rpc_start_stop_and_status_are_served_to_localhost_only(setup: Setup) -> None:
    miner = setup.new_miner(cpu=0.1)
    register_miner_rpc(setup.node.server.rpc, miner)
    try:
        def call(method: str, token: str | None = setup.node.token) -> dict:  # type: ignore[type-arg]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
            return httpx.post(setup.node.url, json=body, headers=headers, timeout=30).json()  # type: ignore[no-any-return]

        def call_from(host: str, method: str) -> dict:  # type: ignore[type-arg]
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
            headers = {"host": setup.node.url.removeprefix("http://"), "authorization": f"Bearer {setup.node.token}"}
            return json.loads(setup.node.server.front.server.handle(body, Caller(host, headers)).body)  # type: ignore[no-any-return]

        assert call("miner_start")["result"] is True
        assert call("zgs_getStatus")["result"]["miner"]["running"] is True
        assert "only served to localhost" in call_from("10.1.2.3", "miner_stop")["error"]
        assert "install token" in call("miner_stop", token=None)["error"]
        assert call("miner_stop")["result"] is True
        assert call("miner_getStatus")["result"]["running"] is False
        assert "networkIdentity" in call_from("10.1.2.3", "zgs_getStatus")["result"]
    finally:
        miner.close()


def test_registration_retries_until_the_miner_can_pay(setup: Setup) -> None:
    setup.miner_key = Account.create()  # no funds: registration fails, the miner keeps trying
    miner = setup.new_miner(cpu=0.1)
    miner.start()
    try:
        assert wait_until(lambda: miner.status()["lastError"] != "", 10), "the failure is reported"
        status = miner.status()
        assert not status["registered"] and status["running"]
        assert "0G" in status["lastError"], status["lastError"]  # names what is missing
        setup.chain.transact(devnet_role("deployer"), to=setup.miner_key.address, value=10**18)
        assert wait_until(lambda: miner.status()["registered"], 30), miner.status()
    finally:
        miner.close()


def test_rejected_answer_is_recorded_and_mining_continues(setup: Setup, tmp_path: Path) -> None:
    upload(setup, tmp_path)
    setup.next_epoch()
    miner = setup.new_miner()
    miner.register()
    miner.workers.mining.set()
    miner.tick()  # records the epoch holding the upload
    miner.tick()  # seals it and sets the puzzle
    puzzle = miner.workers.puzzle
    assert puzzle is not None
    hit = None
    while hit is None:
        hit = miner.workers.iterate(puzzle, os.urandom(32))
    deployer = devnet_role("deployer")
    setup.chain.transact(deployer, miner.mine.contract.functions.setDifficulty(2**250))  # the hit now misses
    miner.workers.add_hit(hit)
    miner.submit_hits()
    answer = miner.store.answer(puzzle.epoch)
    assert answer is not None and answer["state"] == "rejected" and "MissedTarget" in answer["detail"]
    setup.chain.transact(deployer, miner.mine.contract.functions.setDifficulty(1))
    setup.next_epoch()
    miner.start()
    try:
        accepted(miner)
    finally:
        miner.close()
    assert miner.status()["answersRejected"] == 1
