"""Erasure-coding benchmarks, each against a baseline measured in the same run:

* storage overhead (bytes stored on the nodes per byte of file) of ``--ec 4+2`` on 8 nodes of
  shards i/8 vs 3 full replicas on 3 nodes: both survive the loss of any 2 nodes
  (goal <= 0.6x: 1.5 vs 3.0 plus the parity file's alignment filler);
* repair of one lost node's data (kill -9, data deleted, an empty node restarted on the same
  shard, ``ErasureClient.repair``) vs a plain verified download of a file of the same byte
  count from the same nodes (median of ``ROUNDS`` each, seconds; a ratio above 1 is the price
  of rebuilding from k pieces);
* time to the first byte of an erasure-coded file through the gateway (``GET /file``) vs that of
  a plain file on the same nodes (median of 5; goal <= 2x).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.harness import BenchChain, bench_chain, report
from zgos.chain.accounts import devnet_role
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage.client import StorageClient
from zgos.storage.ecclient import ErasureClient
from zgos.storage.spec.erasure import ErasureParams
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT

MIB = 1024 * 1024
FILE_MIB = int(os.environ.get("ZGOS_BENCH_EC_MIB", "64"))
SHARDS = 8
REPLICAS = 3
LOST = 5  # the node that is lost in the repair measurement
ROUNDS = 3  # repairs (and plain downloads) measured; their medians are compared


class Nodes:
    def __init__(self, bc: BenchChain, shards: list[str], prefix: str) -> None:
        self.data_dir = DataDir(bc.workdir / "data")
        if not self.data_dir.root.exists():
            self.data_dir.root.mkdir()
            self.data_dir.network.write_text(f'{{"rpc_url": "{bc.anvil.url}", "chain_id": {bc.chain.chain_id}, "outbound_allow": "loopback"}}')
            bc.deployment.save(self.data_dir.deployment)
        self.shards, self.prefix, self.log = shards, prefix, bc.workdir / f"{prefix}.log"
        self.ports = [free_port() for _ in shards]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * len(shards)
        for i in range(len(shards)):
            self.start(i)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self, i: int) -> None:
        argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(self.data_dir.root), "storage", "node",
                "--name", f"{self.prefix}-{i}", "--port", str(self.ports[i]), "--shard", self.shards[i],
                "--confirmations", "0", "--poll", "0.1", "--no-announce"]
        self.processes[i] = subprocess.Popen(argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        if not wait_until(lambda: httpx.get(self.urls[i] + "/health", timeout=1).status_code == 200, 60):
            raise RuntimeError(f"node {i} did not start; see {self.log}")

    def kill_and_wipe(self, i: int) -> None:
        process = self.processes[i]
        assert process is not None
        process.kill()
        process.wait()
        shutil.rmtree(self.data_dir.service(f"{self.prefix}-{i}"))

    def stored_bytes(self, seq: int) -> int:
        """Bytes of file ``seq`` the nodes hold (whole segments)."""
        total = 0
        for url in self.urls:
            held = httpx.get(f"{url}/zgos/v1/file/{seq}", timeout=30).json()["segments"]
            total += len(held) * BYTES_PER_SEGMENT
        return total

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                process.kill()
                process.wait()


def _file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        left = size
        while left:
            handle.write(os.urandom(min(left, MIB)))
            left -= min(left, MIB)
    return path


def first_byte_s(url: str, root: bytes) -> float:
    """Seconds from asking the gateway at ``url`` for ``root`` to its first body byte."""
    start = time.perf_counter()
    with httpx.stream("GET", f"{url}/file", params={"root": "0x" + root.hex()}, timeout=120) as response:
        response.raise_for_status()
        next(response.iter_raw())
        return time.perf_counter() - start


def bench_first_byte(bc: BenchChain, nodes: Nodes, ec_root: bytes, plain_root: bytes) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(nodes.data_dir.root), "storage", "indexer",
            "--port", str(port), "--no-registry", *(arg for node in nodes.urls for arg in ("--peers", node))]
    gateway = subprocess.Popen(argv, stdout=(bc.workdir / "gateway.log").open("ab"), stderr=subprocess.STDOUT)
    try:
        if not wait_until(lambda: httpx.get(f"{url}/node/status", timeout=1).status_code == 200, 60):
            raise RuntimeError(f"the gateway did not start; see {bc.workdir / 'gateway.log'}")
        wait_until(lambda: len(httpx.get(f"{url}/node/status", timeout=5).json().get("nodes", [])) == len(nodes.urls), 30)
        ec_s = statistics.median(first_byte_s(url, ec_root) for _ in range(5))
        plain_s = statistics.median(first_byte_s(url, plain_root) for _ in range(5))
        report("gateway time to first byte of a 4+2 erasure-coded file vs a plain file on the same nodes "
               "(median of 5, seconds, lower is better)", ec_s, plain_s, "s", "<= 2x")
    finally:
        gateway.kill()
        gateway.wait()


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _repair_s(nodes: Nodes, bc: BenchChain, root: bytes, lost_bytes: int) -> float:
    """Seconds ``ErasureClient.repair`` takes to restore node ``LOST`` after it lost its data."""
    nodes.kill_and_wipe(LOST)
    nodes.start(LOST)
    with ErasureClient(nodes.urls, bc.chain, bc.deployment.address("Flow"), bc.deployment.address("ErasureRegistry"),
                       devnet_role("user")) as ec:
        start = time.perf_counter()
        _, restored = ec.repair(root)
        seconds = time.perf_counter() - start
        assert ec.health(root).survives == 2, "the repair restored full durability"
    assert restored * BYTES_PER_SEGMENT == lost_bytes, (restored, lost_bytes)
    return seconds


def main() -> None:
    account = devnet_role("user")
    with bench_chain() as bc:
        flow, registry = bc.deployment.address("Flow"), bc.deployment.address("ErasureRegistry")
        path = _file(bc.workdir / "file.bin", FILE_MIB * MIB)
        ec_nodes = Nodes(bc, [f"{i}/{SHARDS}" for i in range(SHARDS)], "ec")
        try:
            with ErasureClient(ec_nodes.urls, bc.chain, flow, registry, account) as ec:
                result = ec.upload(path, ErasureParams(4, 2))
            ec_stored = ec_nodes.stored_bytes(result.tx_seq) + ec_nodes.stored_bytes(result.parity_seq)
            replica_nodes = Nodes(bc, ["0/1"] * REPLICAS, "replica")
            try:
                replica_copy = _file(bc.workdir / "replica.bin", FILE_MIB * MIB)  # same size, its own root
                with StorageClient(replica_nodes.urls, bc.chain, flow, account) as client:
                    plain = client.upload(replica_copy, replicas=REPLICAS)
                replica_stored = replica_nodes.stored_bytes(plain.tx_seq)
            finally:
                replica_nodes.stop()
            size = path.stat().st_size
            report(f"storage overhead of --ec 4+2 on {SHARDS} nodes vs {REPLICAS} replicas, {FILE_MIB} MiB "
                   "(stored bytes per file byte; both survive any 2 node losses)",
                   ec_stored / size, replica_stored / size, "x", "<= 0.6x")

            lost_bytes = 0
            with httpx.Client(timeout=30) as http:
                for seq in (result.tx_seq, result.parity_seq):
                    lost_bytes += len(http.get(f"{ec_nodes.urls[LOST]}/zgos/v1/file/{seq}").json()["segments"]) * BYTES_PER_SEGMENT
            same = _file(bc.workdir / "same.bin", lost_bytes)
            with StorageClient(ec_nodes.urls, bc.chain, flow, account) as client:
                baseline_root = client.upload(same).root
                download_s = statistics.median(_timed(lambda: client.download(baseline_root, bc.workdir / "same.out"))
                                               for _ in range(ROUNDS))
            bench_first_byte(bc, ec_nodes, result.root, baseline_root)
            repair_s = statistics.median(_repair_s(ec_nodes, bc, result.root, lost_bytes) for _ in range(ROUNDS))
            report(f"repair of one lost node's data ({lost_bytes / MIB:.1f} MiB of a {FILE_MIB} MiB 4+2 file) "
                   f"vs plain verified download of the same bytes (median of {ROUNDS}, seconds, lower is better)",
                   repair_s, download_s, "s", "<= 5x")
        finally:
            ec_nodes.stop()


if __name__ == "__main__":
    main()
