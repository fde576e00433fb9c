"""What benchmarks share: a throwaway anvil with the contracts deployed, a data dir for the
``zg`` services started against it, a process's CPU time and memory, and ratio printing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_all
from zgos.chain.networks import DEVNET_ACCOUNTS
from zgos.devnet.plan import PLAN
from zgos.runtime.netutil import free_port, wait_until


@dataclass
class BenchChain:
    anvil: Anvil
    chain: Chain
    deployment: Deployment
    workdir: Path


@contextmanager
def bench_chain(block_time_s: float = 0.2, accounts: int = DEVNET_ACCOUNTS) -> Iterator[BenchChain]:
    """Anvil with the devnet mnemonic's first ``accounts`` accounts funded, contracts deployed."""
    with tempfile.TemporaryDirectory(prefix="zgos-bench-") as tmp:
        workdir = Path(tmp)
        config = AnvilConfig(port=free_port(), block_time_s=block_time_s, accounts=accounts)
        anvil = Anvil(config, workdir / "anvil.log")
        anvil.start()
        try:
            chain = Chain(anvil.url)
            deployment = deploy_all(chain, devnet_role("deployer"), workdir / "deployment.json", PLAN)
            yield BenchChain(anvil, chain, deployment, workdir)
        finally:
            anvil.stop()


def service_data_dir(bc: BenchChain, outbound_allow: str = "loopback") -> Path:
    """``<workdir>/data``: the data dir ``zg`` services run with against ``bc`` (network.json with
    the chain and which announced addresses they may reach, deployment.json); made once."""
    root = bc.workdir / "data"
    if not root.exists():
        root.mkdir()
        network = {"rpc_url": bc.anvil.url, "chain_id": bc.chain.chain_id, "outbound_allow": outbound_allow}
        (root / "network.json").write_text(json.dumps(network))
        bc.deployment.save(root / "deployment.json")
    return root


def start_zg(data_dir: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``zg --data-dir DATA_DIR ARGS...`` as a subprocess of this Python, output appended to ``log``."""
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), *args]
    return subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 60) -> None:
    """Wait until ``url``/health answers 200; kill ``process`` and raise if it does not in time."""
    if not wait_until(lambda: httpx.get(url + "/health", timeout=1).status_code == 200, timeout_s):
        process.kill()
        raise RuntimeError(f"{url} did not start; see {log}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_bytes(pid: int) -> tuple[int, int]:
    """A process's resident memory now and at its peak (``VmRSS``, ``VmHWM`` in /proc), bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def machine_load() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(name: str, ours: float, baseline: float, unit: str, goal: str = "") -> None:
    """Print one result line: both measurements and their ratio (ours / baseline)."""
    ratio = ours / baseline if baseline else float("inf")
    suffix = f"  goal {goal}" if goal else ""
    print(f"{name}: ours {ours:.4g} {unit}, baseline {baseline:.4g} {unit}, ratio {ratio:.2f}x{suffix}", flush=True)
