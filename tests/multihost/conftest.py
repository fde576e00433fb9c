"""The multi-host lab for this directory's scenarios: hosts ``chain``, ``s1``, ``s2``, ``s3`` and
``client`` in network namespaces (``netns.Lab``), anvil on ``chain`` and the zgos contracts
deployed from ``client``; one per module. Blocks come every ``BLOCK_TIME_S`` once deployed
(DA epochs need them); the deployment itself is mined at once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.multihost.netns import Lab, netns_available, zg_env
from zgos.chain.anvil import AnvilConfig
from zgos.runtime.netutil import rpc_ready, wait_until
from zgos.runtime.ports import CHAIN_PORT

HOSTS = ("chain", "s1", "s2", "s3", "client")
READY_S = 120.0
BLOCK_TIME_S = 1  # evm_setIntervalMining takes whole seconds


def zg(data_dir: Path, *args: str) -> list[str]:
    """argv of ``zg`` with its own data dir (each host keeps its own)."""
    return [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), *args]


@dataclass(frozen=True)
class Network:
    lab: Lab
    rpc: str  # the chain host's RPC URL
    deployment: Path  # the deployment file, as its deployer shares it
    work: Path


def _answers(rpc: str) -> bool:
    try:
        return rpc_ready(rpc)
    except Exception:
        return False


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    if not netns_available():
        pytest.skip("needs root and `ip netns` (Linux network namespaces)")
    work = tmp_path_factory.mktemp("lab")
    lab = Lab(HOSTS).up()
    try:
        rpc = f"http://{lab['chain'].address}:{CHAIN_PORT}"
        lab.spawn("chain", AnvilConfig(host=lab["chain"].address, port=CHAIN_PORT, block_time_s=None).argv(),
                  work / "anvil.log")
        assert wait_until(lambda: lab.run_on("client", lambda: _answers(rpc)), READY_S), "the chain answers"
        deployment = work / "deployment.json"
        deployed = lab.run("client", zg(work / "deployer", "chain", "deploy", "--rpc-url", rpc, "--out", str(deployment)),
                           env=zg_env())
        assert deployed.returncode == 0, deployed.stderr
        assert lab.run_on("client", lambda: rpc_call(rpc, "evm_setIntervalMining", BLOCK_TIME_S)) is None
        yield Network(lab, rpc, deployment, work)
    finally:
        lab.down()


def rpc_call(url: str, method: str, *params: object) -> object:
    import httpx

    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                        timeout=10).json()
    assert "error" not in answer, answer
    return answer.get("result")
