"""One storage node and the three devnet oracles (2-of-3), in process, on the session chain,
shared by the INFT flow tests of a module; each test mints its own tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.inft.client import InftClient
from zgos.inft.contracts import InftContracts, devnet_oracles
from zgos.inft.oracle.app import OracleConfig, OracleService
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.netutil import free_port
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient

LOOPBACK = AddressPolicy(allow_loopback=True)


@dataclass
class InftNet:
    chain: Chain
    deployment: Deployment
    storage: RunningNode
    oracles: list[OracleService]
    work: Path

    def client(self, account: LocalAccount) -> InftClient:
        storage = StorageClient([self.storage.url], self.chain, self.deployment.address("Flow"), account)
        return InftClient(InftContracts.from_deployment(self.chain, self.deployment),
                          NodeRegistry(self.chain, self.deployment.address("NodeRegistry")), storage, account,
                          OutboundClient(LOOPBACK, deadline_s=600), self.work, self.deployment.deploy_block)

    def funded(self) -> LocalAccount:
        from zgos.chain.accounts import devnet_role

        account: LocalAccount = Account.create()
        self.chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
        return account


def start_oracle(work: Path, chain: Chain, deployment: Deployment, storage_url: str, account: LocalAccount) -> OracleService:
    config = OracleConfig(state_dir=work, nft=deployment.address("AgentNFT"),
                          verifier=deployment.address("INFTVerifier"), registry=deployment.address("NodeRegistry"),
                          flow=deployment.address("Flow"), storage_nodes=(storage_url,), outbound=LOOPBACK,
                          port=free_port())
    oracle = OracleService(config, account, chain)
    oracle.start()
    return oracle


@pytest.fixture(scope="module")
def inft_net(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[InftNet]:
    tmp = tmp_path_factory.mktemp("inft")
    storage = start_node(tmp / "storage", chain, deployment)
    oracles = [start_oracle(tmp / f"oracle-{i}", chain, deployment, storage.url, account)
               for i, account in enumerate(devnet_oracles())]
    (tmp / "work").mkdir()
    yield InftNet(chain, deployment, storage, oracles, tmp / "work")
    for oracle in oracles:
        oracle.close()
    storage.stop()
