"""What benchmarks share: a throwaway anvil with the contracts deployed, and ratio printing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_all
from zgos.devnet.plan import PLAN
from zgos.runtime.netutil import free_port


@dataclass
class BenchChain:
    anvil: Anvil
    chain: Chain
    deployment: Deployment
    workdir: Path


@contextmanager
def bench_chain(block_time_s: float = 0.2) -> Iterator[BenchChain]:
    with tempfile.TemporaryDirectory(prefix="zgos-bench-") as tmp:
        workdir = Path(tmp)
        anvil = Anvil(AnvilConfig(port=free_port(), block_time_s=block_time_s), workdir / "anvil.log")
        anvil.start()
        try:
            chain = Chain(anvil.url)
            deployment = deploy_all(chain, devnet_role("deployer"), workdir / "deployment.json", PLAN)
            yield BenchChain(anvil, chain, deployment, workdir)
        finally:
            anvil.stop()


def report(name: str, ours: float, baseline: float, unit: str, goal: str = "") -> None:
    """Print one result line: both measurements and their ratio (ours / baseline)."""
    ratio = ours / baseline if baseline else float("inf")
    suffix = f"  goal {goal}" if goal else ""
    print(f"{name}: ours {ours:.4g} {unit}, baseline {baseline:.4g} {unit}, ratio {ratio:.2f}x{suffix}", flush=True)
