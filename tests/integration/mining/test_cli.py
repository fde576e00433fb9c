"""`zg storage node --miner-key`, `zg storage miner ...` and `zg storage rewards` as a user runs
them: a node process mines an upload's fees for its operator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.clirunner import zg
from tests.servers import await_http
from zgos.chain.accounts import devnet_account
from zgos.chain.anvil import Anvil
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until

from .conftest import EPOCH_BLOCKS

MINER_INDEX = 5  # a devnet account no other test of this chain signs with


@pytest.fixture
def data_dir(tmp_path: Path, mine_anvil: Anvil, mine_chain: Chain, mine_deployment: Deployment) -> DataDir:
    data = DataDir(tmp_path / "data")
    data.root.mkdir(parents=True)
    data.network.write_text(json.dumps({"rpc_url": mine_anvil.url, "chain_id": mine_chain.chain_id}))
    shutil.copy(tmp_path / "deployment.json", data.deployment)
    return data


@pytest.fixture
def node_url(data_dir: DataDir) -> Iterator[str]:
    port = free_port()
    log = (data_dir.root / "node.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "storage", "node", "--port", str(port),
         "--confirmations", "0", "--poll", "0.1", "--no-announce",
         "--miner-key", f"devnet:{MINER_INDEX}", "--mine-cpu", "0.5"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await_http(url + "/health", "the mining storage node", data_dir.root / "node.log", process)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_node_mines_upload_fees_and_cli_shows_rewards(data_dir: DataDir, node_url: str, mine_chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(300_000))
    upload = zg(data_dir.root, "storage", "upload", str(path), "--node", node_url)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    mine_chain.w3.provider.make_request("evm_increaseTime", [86_400])  # type: ignore[arg-type]
    mine_chain.w3.provider.make_request("anvil_mine", [hex(EPOCH_BLOCKS + 1)])  # type: ignore[arg-type]

    def accepted() -> bool:
        body = {"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus", "params": []}
        return int(httpx.post(node_url, json=body, timeout=10).json()["result"]["miner"]["answersAccepted"]) >= 1

    assert wait_until(accepted, 60, 0.5), (data_dir.root / "node.log").read_text()[-3000:]
    status = zg(data_dir.root, "storage", "miner", "status", "--node", node_url)
    assert "1 accepted" in status.stdout and "hash rate" in status.stdout and "registered" in status.stdout and "last       epoch" in status.stdout
    miner = devnet_account(MINER_INDEX)
    rewards = zg(data_dir.root, "storage", "rewards", miner.address)
    assert rewards.returncode == 0, rewards.stderr
    assert "reward pools" in rewards.stdout and f"pays {miner.address}" in rewards.stdout
    claimed = next(line for line in rewards.stdout.splitlines() if line.startswith(miner.address))
    assert "claimed 0 0G" not in claimed
    stop = zg(data_dir.root, "storage", "miner", "stop", "--node", node_url)
    assert stop.returncode == 0 and "paused" in stop.stdout
    log = (data_dir.root / "node.log").read_text()
    assert miner.key.hex().removeprefix("0x") not in log, "the miner key is never logged"
    assert "accepted" in log


def test_mining_cli_errors_are_one_line(data_dir: DataDir, tmp_path: Path) -> None:
    bad = zg(data_dir.root, "storage", "rewards", "not-an-address")
    assert bad.returncode == 1 and "not an address" in bad.stderr and "Traceback" not in bad.stderr
    missing = zg(data_dir.root, "storage", "node", "--port", str(free_port()), "--no-announce", "--miner-key", "nosuchkey",
                 env={"ZGOS_KEYSTORE_PASSWORD": "x"})
    assert missing.returncode == 1 and "nosuchkey" in missing.stderr and "Traceback" not in missing.stderr
