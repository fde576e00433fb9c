"""One storage node holding one uploaded file, on the session chain, shared by every alignment
test (package scope); each test bonds its own operators and registers its own auditors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import DEVNET_MIN_AUDITOR_STAKE, DEVNET_MIN_BOND, BondKind
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain, _revert_reason
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.storage.client import StorageClient, UploadResult
from zgos.storage.contracts import LogEntry
from zgos.storage.node.custody import CustodySigner
from zgos.storage.node.responder import ChallengeResponder
from zgos.storage.spec.challenges import Custody, compute_custody, sign_custody

FILE_BYTES = 3 * 256 * 1024 + 1000  # four segments, the last one partly filled
CUSTODY_VALID_BLOCKS = 100_000


@dataclass
class AlignmentNet:
    chain: Chain
    deployment: Deployment
    storage: RunningNode
    file: UploadResult
    entry: LogEntry
    work: Path
    node_operator: LocalAccount | None = None  # announced, bonded, signs the node's custody

    @property
    def contracts(self) -> AlignmentContracts:
        return AlignmentContracts.from_deployment(self.chain, self.deployment)

    def funded(self, value: int = 20 * 10**18) -> LocalAccount:
        account: LocalAccount = Account.create()
        self.chain.transact(devnet_role("deployer"), to=account.address, value=value)
        return account

    def storage_operator(self, bond: int = DEVNET_MIN_BOND) -> LocalAccount:
        """A fresh account announced as a storage node and bonded."""
        operator = self.funded()
        NodeRegistry(self.chain, self.deployment.address("NodeRegistry")).announce(
            operator, NodeKind.STORAGE, "http://127.0.0.1:1")
        self.contracts.bond(operator, BondKind.STORAGE, bond)
        return operator

    def auditor(self) -> LocalAccount:
        auditor = self.funded()
        self.contracts.register_auditor(auditor, DEVNET_MIN_AUDITOR_STAKE)
        return auditor

    def custody(self, operator: LocalAccount) -> tuple[Custody, bytes]:
        """The shared file's custody (one shard holds it all), signed by ``operator``."""
        e = self.entry
        custody = compute_custody(e.seq, e.start_entry, e.size, e.start_entry + e.sectors, 0, 1,
                                  self.chain.block_number() + CUSTODY_VALID_BLOCKS)
        return custody, sign_custody(operator.key, self.contracts.domain(), custody)

    def mine(self, blocks: int) -> None:
        self.chain.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]

    def upload(self, data: bytes) -> UploadResult:
        path = self.work / os.urandom(8).hex()
        path.write_bytes(data)
        with StorageClient([self.storage.url], self.chain, self.deployment.address("Flow"), self.funded()) as c:
            return c.upload(path)


def revert_at(fn: ContractFunction, block: int, sender: str) -> str:
    """Why ``fn`` reverts when called as ``sender`` on the state of ``block`` ("ok" if it does not)."""
    try:
        fn.call({"from": sender}, block_identifier=block)
    except ContractLogicError as exc:
        return _revert_reason(exc)
    return "ok"


@pytest.fixture(scope="package")
def alignment_net(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[AlignmentNet]:
    tmp = tmp_path_factory.mktemp("alignment")
    storage = start_node(tmp / "storage", chain, deployment)
    (tmp / "work").mkdir()
    net = AlignmentNet(chain, deployment, storage, None, None, tmp / "work")  # type: ignore[arg-type]
    net.file = net.upload(os.urandom(FILE_BYTES))
    net.entry = storage.node.tx_by_seq(net.file.tx_seq).entry
    net.node_operator = net.storage_operator()
    storage.server.rpc.add_methods(CustodySigner(storage.node, net.node_operator).methods())
    yield net
    storage.stop()


@pytest.fixture
def announced(alignment_net: AlignmentNet) -> AlignmentNet:
    """The shared node announced at its real URL (the auditor finds nodes through the registry)."""
    assert alignment_net.node_operator is not None
    NodeRegistry(alignment_net.chain, alignment_net.deployment.address("NodeRegistry")).announce(
        alignment_net.node_operator, NodeKind.STORAGE, alignment_net.storage.url)
    return alignment_net


def responder(net: AlignmentNet) -> ChallengeResponder:
    """The shared node's challenge responder, run by the test (``run_once``)."""
    assert net.node_operator is not None

    def source(tx_seq: int, sector: int) -> tuple[bytes, list[bytes]]:
        data, proof = net.storage.node.challenged_sector(tx_seq, sector)
        return data, list(proof.siblings)

    return ChallengeResponder(net.contracts, net.node_operator, source)
