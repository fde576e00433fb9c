"""The INFT oracles as the devnet runs them (``zg inft oracle`` processes) and ``zg inft`` as a
user runs it: the CLI round trip, and kill -9 of the leading oracle in the middle of a
transfer, after which the transfer completes through the others (issue 16, Must hold)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.conftest import session_chain_data_dir
from tests.integration.clirunner import zg
from tests.integration.inft.conftest import LOOPBACK
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.accounts import PRIVATE_KEY_ENV, devnet_account, devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.inft.client import InftClient, pubkey_of
from zgos.inft.contracts import InftContracts
from zgos.inft.devnet import DEVNET_ORACLES
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, rpc_ready, wait_until
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient

KILL_FILE_BYTES = 16 * 1024 * 1024  # big enough that the lead is still at work when killed
RECEIVER_INDEX = 5  # devnet accounts the CLI names as receivers and users
USER_INDEX = 6


@dataclass
class OracleProcesses:
    data_dir: DataDir
    storage: RunningNode
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]
    tmp: Path

    def spawn(self, index: int) -> None:
        log = (self.tmp / f"oracle-{index}.log").open("ab")
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "zgos.cli", "--data-dir", str(self.data_dir.root), "inft", "oracle", "--index",
             str(index), "--port", str(self.ports[index]), "--storage-node", self.storage.url],
            stdout=log, stderr=subprocess.STDOUT, env={k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")})
        url = f"http://127.0.0.1:{self.ports[index]}"
        assert wait_until(lambda: rpc_ready(url, "inft_oracleInfo"), 60), (self.tmp / f"oracle-{index}.log").read_text()

    def zg(self, account: LocalAccount | None, *args: str) -> subprocess.CompletedProcess[str]:
        env = {PRIVATE_KEY_ENV: account.key.hex()} if account else {}
        return zg(self.data_dir.root, "inft", *args, env=env, timeout=300)


@pytest.fixture(scope="module")
def oracles(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment,
            deployment_path: Path) -> Iterator[OracleProcesses]:
    tmp = tmp_path_factory.mktemp("inft-processes")
    data_dir = session_chain_data_dir(tmp / "data", chain, deployment_path)
    storage = start_node(tmp / "storage", chain, deployment)
    net = OracleProcesses(data_dir, storage, [free_port() for _ in range(DEVNET_ORACLES)], [], tmp)
    net.procs = [None] * DEVNET_ORACLES  # type: ignore[list-item]
    for i in range(DEVNET_ORACLES):
        net.spawn(i)
    yield net
    for proc in net.procs:
        proc.kill()
        proc.wait()
    storage.stop()


def funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
    return account


def test_zg_inft_mints_shows_authorizes_transfers_and_decrypts(oracles: OracleProcesses, chain: Chain,
                                                                tmp_path: Path) -> None:
    owner, receiver, user = funded(chain), devnet_account(RECEIVER_INDEX), devnet_account(USER_INDEX)
    agent = tmp_path / "agent.json"
    agent.write_bytes(os.urandom(50_000))
    node = ("--node", oracles.storage.url)
    minted = oracles.zg(owner, "mint", str(agent), "--desc", "character", *node)
    assert minted.returncode == 0, minted.stderr
    token = re.search(r"minted token (\d+)", minted.stdout).group(1)  # type: ignore[union-attr]
    listed = oracles.zg(None, "list", owner.address)
    assert f": {token}" in listed.stdout or f", {token}" in listed.stdout, listed.stdout
    assert oracles.zg(owner, "authorize", token, f"devnet:{USER_INDEX}").returncode == 0
    assert user.address in oracles.zg(None, "show", token).stdout
    assert oracles.zg(owner, "revoke", token, f"devnet:{USER_INDEX}").returncode == 0
    assert "authorized users: none" in oracles.zg(None, "show", token).stdout
    assert "2 of 3 oracles must sign" in oracles.zg(None, "oracles").stdout
    moved = oracles.zg(owner, "transfer", token, f"devnet:{RECEIVER_INDEX}", *node)
    assert moved.returncode == 0, moved.stderr
    out = tmp_path / "out.json"
    decrypted = oracles.zg(None, "decrypt", token, str(out), "--account", f"devnet:{RECEIVER_INDEX}", *node)
    assert decrypted.returncode == 0, decrypted.stderr
    assert out.read_bytes() == agent.read_bytes()
    refused = oracles.zg(owner, "decrypt", token, str(tmp_path / "stolen"), *node)
    assert refused.returncode != 0 and "wrong encryption key" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "stolen").exists()
    assert oracles.zg(None, "show", token).stdout.count(receiver.address) == 1


def test_kill_9_of_the_lead_oracle_mid_transfer_and_the_transfer_still_completes(
        oracles: OracleProcesses, chain: Chain, deployment: Deployment, tmp_path: Path) -> None:
    owner, receiver = funded(chain), Account.create()
    agent = tmp_path / "agent.bin"
    agent.write_bytes(os.urandom(KILL_FILE_BYTES))
    client = InftClient(InftContracts.from_deployment(chain, deployment),
                        NodeRegistry(chain, deployment.address("NodeRegistry")),
                        StorageClient([oracles.storage.url], chain, deployment.address("Flow"), owner),
                        owner, OutboundClient(LOOPBACK, deadline_s=900), tmp_path, deployment.deploy_block)
    token = client.mint([(agent, "weights")])
    lead_state = oracles.data_dir.service("inft-oracle-0")
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(offer=client.offer(token, pubkey_of(receiver))))
    worker.start()
    assert wait_until(lambda: any(p.is_dir() for p in lead_state.iterdir()), 60), "the lead never started"
    os.kill(oracles.procs[0].pid, signal.SIGKILL)
    oracles.procs[0].wait()
    worker.join(600)
    try:
        assert "offer" in outcome, "the transfer did not complete without the killed lead"
        assert client.contracts.owner_of(token) == owner.address, "nothing moved before the receiver accepted"
        offer = outcome["offer"]
        client.transfer(offer, client.accept(offer, receiver))  # type: ignore[arg-type]
        assert client.decrypt(token, tmp_path / "out", receiver)[0].read_bytes() == agent.read_bytes()
    finally:
        oracles.spawn(0)


def test_zg_inft_offers_to_a_public_key_and_the_receiver_accepts_on_its_own_machine(
        oracles: OracleProcesses, chain: Chain, tmp_path: Path) -> None:
    owner, receiver = funded(chain), funded(chain)
    agent = tmp_path / "memory.json"
    agent.write_bytes(os.urandom(20_000))
    node = ("--node", oracles.storage.url)
    minted = oracles.zg(owner, "mint", str(agent), *node)
    token = re.search(r"minted token (\d+)", minted.stdout).group(1)  # type: ignore[union-attr]
    pubkey = oracles.zg(receiver, "pubkey").stdout.strip()
    offer = tmp_path / "offer.json"
    offered = oracles.zg(owner, "clone", token, pubkey, "--out", str(offer), *node)
    assert offered.returncode == 0 and offer.exists(), offered.stderr
    assert "not for" in oracles.zg(owner, "accept", str(offer), *node).stderr, "only the named receiver accepts"
    accepted = oracles.zg(receiver, "accept", str(offer), *node)
    assert accepted.returncode == 0, accepted.stderr
    cloned = oracles.zg(owner, "clone", token, "--accepted", str(tmp_path / "offer.accepted.json"), *node)
    assert cloned.returncode == 0, cloned.stderr
    clone = re.search(r"as token (\d+)", cloned.stdout).group(1)  # type: ignore[union-attr]
    out = tmp_path / "copy.json"
    assert oracles.zg(receiver, "decrypt", clone, str(out), *node).returncode == 0
    assert out.read_bytes() == agent.read_bytes()
