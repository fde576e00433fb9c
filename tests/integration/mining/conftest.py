"""Mining fixtures: a private anvil that mines a block per transaction (so a test controls epochs
and time exactly) and a fresh storage + mining deployment per test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_all
from zgos.devnet.plan import PLAN
from zgos.runtime.netutil import free_port

EPOCH_BLOCKS = 30
STORAGE_CONTRACTS = ("NodeRegistry", "Reward", "Market", "Flow", "PoraMine")


def mining_plan(difficulty: int = 1, epoch_blocks: int = EPOCH_BLOCKS, target_submissions: int = 10) -> list:  # type: ignore[type-arg]
    """The deploy PLAN's storage and mining contracts with test epochs and difficulty."""
    plan = []
    for item in PLAN:
        if item.name not in STORAGE_CONTRACTS:
            continue
        if item.name == "Flow":
            item = dataclasses.replace(item, args=lambda a: [a["Market"], epoch_blocks, 0])
        if item.name == "PoraMine":
            item = dataclasses.replace(
                item, args=lambda a: [a["Flow"], a["Reward"], difficulty, target_submissions, 1]
            )
        plan.append(item)
    return plan


@pytest.fixture(scope="session")
def mine_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = tmp_path_factory.mktemp("mine-anvil") / "anvil.log"
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=1.0), log_path=log)
    node.start()
    chain = Chain(node.url)
    chain.w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    yield node
    node.stop()


@pytest.fixture(scope="session")
def mine_chain(mine_anvil: Anvil) -> Chain:
    return Chain(mine_anvil.url)


@pytest.fixture
def mine_deployment(mine_chain: Chain, tmp_path: Path) -> Deployment:
    return deploy_all(mine_chain, devnet_role("deployer"), tmp_path / "deployment.json", mining_plan())
