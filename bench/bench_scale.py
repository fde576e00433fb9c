"""Scale simulation (issue 19 part 4): how costs grow with the size of the network, every node a
local ``zg`` process on this one machine (2 cores), so "reduced resources".

1. Storage, 1, 4, 16 and 32 nodes (node ``i`` of ``n`` runs ``--shard i/n``, or with
   ``ZGOS_BENCH_SCALE_REPLICAS=r`` ``r`` nodes per shard; each announces itself in the
   NodeRegistry and peer-syncs, as on the devnet; a fresh chain per size):
   * per node: CPU seconds and resident memory over an idle ``IDLE_WINDOW_S`` (the cost of
     being in a network of ``n``: log sync, peer discovery of the announced nodes of its shard), and
     over the fixed workload below (its CPU falls with ``n``: each node holds ``1/n`` of it);
   * the workload: upload then download of one ``FILE_MIB`` MiB file (best of two downloads);
   * indexer refresh: ``NodeDirectory.refresh`` (what ``zg storage indexer`` runs every round:
     read the registry, probe every node): the first (cold, what a client's one-shot
     ``discover`` costs) and the median of ``REFRESHES`` later ones (warm);
   * a new node joining with shard 0: seconds from its start until it holds its part of the file.
2. DA, 4, 8 and 16 signers: certificate latency of a 1 MiB blob (``bench_da.certify``, 1 s
   blocks) and the certificate transaction's gas, with its least-squares slope per signer.
3. Compute, 1, 4 and 8 providers: settlement gas per user, each of ``USERS`` fresh users owing
   every provider, each provider settling its users as the broker does (``plan_settlement``
   chunks through ``settleBatch``).

Markdown tables (machine load beside each row) go to stdout, the plots to ``bench/scale_*.png``
(``bench.scale_report``). ``ZGOS_BENCH_SCALE`` picks parts (``storage,da,compute``);
``ZGOS_BENCH_SCALE_NODES`` the storage sizes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from eth_account import Account

from bench import scale_report
from bench.bench_compute import register
from bench.bench_da import certify, start_da_network
from bench.harness import (
    BenchChain,
    bench_chain,
    cpu_seconds,
    machine_load,
    memory_bytes,
    service_data_dir,
    start_zg,
    wait_healthy,
)
from zgos.chain.accounts import devnet_account, devnet_role
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import ensure_gemma
from zgos.compute.spec import settlement
from zgos.compute.spec import vouchers as v
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import call_jsonrpc, free_port, wait_until
from zgos.storage.client import StorageClient
from zgos.storage.indexer.directory import NodeDirectory

MIB = 1024 * 1024
FILE_MIB = int(os.environ.get("ZGOS_BENCH_SCALE_MIB", "16"))
STORAGE_SIZES = tuple(int(n) for n in os.environ.get("ZGOS_BENCH_SCALE_NODES", "1,4,16,32").split(","))
REPLICAS = int(os.environ.get("ZGOS_BENCH_SCALE_REPLICAS", "1"))  # nodes per shard (a power of two)
SIGNER_COUNTS = (4, 8, 16)
PROVIDER_COUNTS = (1, 4, 8)
USERS = 8
IDLE_WINDOW_S = 20.0
SETTLE_S = 5.0  # after every node answers: let the first discovery rounds finish
REFRESHES = 5
NODE_POLL_S = 0.5  # the nodes' log sync poll (the flag's default)
CHAIN_BLOCK_S = 0.2
DA_BLOCK_S = 1.0
START_TIMEOUT_S = 240.0
JOIN_TIMEOUT_S = 180.0
FIRST_SPARE_ACCOUNT = 24  # devnet accounts past the roles (DEVNET_ACCOUNTS): node and signer operators
CHAIN_ACCOUNTS = 64


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    url: str


@dataclass
class StorageRow:
    nodes: int
    load: str
    upload_mbps: float
    download_mbps: float
    join_s: float  # start of the new node until it holds its shard of the file
    join_after_ready_s: float  # from its first /health answer
    refresh_cold_s: float
    refresh_warm_s: float
    idle_cpu_s: list[float]  # per node, over IDLE_WINDOW_S
    workload_cpu_s: list[float]  # per node, over the upload and downloads
    rss_mib: list[float]  # per node, after the workload
    peak_rss_mib: list[float]


def _start_node(data_dir: Path, workdir: Path, name: str, shard: str, account: int) -> Node:
    port = free_port()
    process = start_zg(data_dir, workdir / f"{name}.log", "storage", "node", "--name", name, "--port", str(port),
                       "--confirmations", "0", "--poll", str(NODE_POLL_S), "--shard", shard,
                       "--account", f"devnet:{account}")
    return Node(process, f"http://127.0.0.1:{port}")


def _shards(n: int) -> int:
    """Shards of a network of ``n`` nodes, ``REPLICAS`` nodes each (one when ``n`` is smaller)."""
    return max(1, n // REPLICAS)


def _start_storage(bc: BenchChain, n: int) -> list[Node]:
    data_dir, shards = service_data_dir(bc), _shards(n)
    nodes = [_start_node(data_dir, bc.workdir, f"storage-{i}", f"{i % shards}/{shards}", FIRST_SPARE_ACCOUNT + i)
             for i in range(n)]
    for i, node in enumerate(nodes):
        wait_healthy(node.process, node.url, bc.workdir / f"storage-{i}.log", START_TIMEOUT_S)
    registry = NodeRegistry(bc.chain, bc.deployment.address("NodeRegistry"))
    if not wait_until(lambda: len(registry.nodes(NodeKind.STORAGE)) == n, 60, 0.2):
        raise RuntimeError(f"not all {n} nodes announced themselves")
    return nodes


def _cpu(nodes: list[Node]) -> list[float]:
    return [cpu_seconds(node.process.pid) for node in nodes]


def _since(before: list[float], nodes: list[Node]) -> list[float]:
    return [after - start for after, start in zip(_cpu(nodes), before, strict=True)]


def _transfer(bc: BenchChain, nodes: list[Node], path: Path) -> tuple[float, float, bytes]:
    """Upload (to every node of each shard) and best-of-two download throughput, MB/s, and the
    file's root."""
    urls, n = [node.url for node in nodes], len(nodes)
    size_mb = path.stat().st_size / 1e6
    with StorageClient(urls, bc.chain, bc.deployment.address("Flow"), devnet_role("user")) as client:
        started = time.perf_counter()
        root = client.upload(path, replicas=n // _shards(n)).root
        upload_s = time.perf_counter() - started
    times = []
    for _ in range(2):
        out = bc.workdir / "out.bin"
        with StorageClient(urls) as client:
            started = time.perf_counter()
            client.download(root, out)
            times.append(time.perf_counter() - started)
        out.unlink()
    return size_mb / upload_s, size_mb / min(times), root


def _refresh_times(bc: BenchChain) -> tuple[float, float]:
    """Seconds of the first and (median) later ``NodeDirectory.refresh`` against the registry."""
    registry = NodeRegistry(bc.chain, bc.deployment.address("NodeRegistry"))
    directory = NodeDirectory(bc.chain.chain_id, bc.deployment.address("Flow"), registry, policy=DEVNET_POLICY)
    times = []
    try:
        for _ in range(REFRESHES + 1):
            started = time.perf_counter()
            snapshot = directory.refresh()
            times.append(time.perf_counter() - started)
            if snapshot.skipped:
                raise RuntimeError(f"the indexer skipped {snapshot.skipped[0].url}: {snapshot.skipped[0].reason}")
    finally:
        directory.close()
    return times[0], statistics.median(times[1:])


def _holds(url: str, root: bytes) -> bool:
    with httpx.Client(timeout=2) as http:
        info = call_jsonrpc(http, url, "zgs_getFileInfo", ["0x" + root.hex(), True])
    return isinstance(info, dict) and bool(info.get("finalized"))


def _join(bc: BenchChain, n: int, root: bytes) -> tuple[float, float]:
    """A new node ``--shard 0/n``: seconds from its start, and from its first health answer,
    until it holds its shard of ``root`` (fetched from its peers)."""
    started = time.perf_counter()
    node = _start_node(service_data_dir(bc), bc.workdir, "joiner", f"0/{_shards(n)}", FIRST_SPARE_ACCOUNT + n)
    try:
        wait_healthy(node.process, node.url, bc.workdir / "joiner.log", START_TIMEOUT_S)
        ready = time.perf_counter()
        if not wait_until(lambda: _holds(node.url, root), JOIN_TIMEOUT_S, 0.1):
            raise RuntimeError(f"the new node did not sync its shard in {JOIN_TIMEOUT_S:g} s; see joiner.log")
        done = time.perf_counter()
    finally:
        _stop([node])
    return done - started, done - ready


def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        node.process.terminate()
    for node in nodes:
        try:
            node.process.wait(15)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


def _mib(values: list[int]) -> list[float]:
    return [value / MIB for value in values]


def measure_storage(n: int) -> StorageRow:
    with bench_chain(CHAIN_BLOCK_S, CHAIN_ACCOUNTS) as bc:
        path = bc.workdir / "file.bin"
        path.write_bytes(os.urandom(FILE_MIB * MIB))
        nodes = _start_storage(bc, n)
        try:
            time.sleep(SETTLE_S)
            before = _cpu(nodes)
            time.sleep(IDLE_WINDOW_S)
            idle = _since(before, nodes)
            before = _cpu(nodes)
            upload, download, root = _transfer(bc, nodes, path)
            workload = _since(before, nodes)
            memory = [memory_bytes(node.process.pid) for node in nodes]
            cold, warm = _refresh_times(bc)
            join_s, join_after_ready_s = _join(bc, n, root)
        finally:
            _stop(nodes)
    return StorageRow(n, machine_load(), upload, download, join_s, join_after_ready_s, cold, warm, idle, workload,
                      _mib([m[0] for m in memory]), _mib([m[1] for m in memory]))


@dataclass
class SignerRow:
    signers: int
    load: str
    latency_s: float  # median over the runs after the first
    gas: int  # median


def measure_da(signers: int) -> SignerRow:
    with bench_chain(DA_BLOCK_S, CHAIN_ACCOUNTS) as bc:
        data_dir = service_data_dir(bc)
        accounts = [f"devnet:{FIRST_SPARE_ACCOUNT + i}" for i in range(signers)]
        processes = start_da_network(bc, data_dir, signers, accounts)
        try:
            times, gas = certify(bc, data_dir)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)
    return SignerRow(signers, machine_load(), statistics.median(times[1:]), int(statistics.median(gas)))


@dataclass
class ProviderRow:
    providers: int
    load: str
    gas_per_user: float  # per (user, provider) settled: one provider's cost for one of its users
    transactions: int


def _fund(compute: ComputeContracts, providers: list[str]) -> list[settlement.DueReceipt]:
    """A fresh user owing each provider: one due receipt per provider."""
    user = Account.create()
    compute.chain.w3.provider.make_request("anvil_setBalance", [user.address, hex(10**19)])  # type: ignore[arg-type]
    due = []
    for provider in providers:
        compute.deposit_and_fund(user, provider, 10**15)
        receipt = v.Receipt(user.address.lower(), provider.lower(), 7000)
        due.append(settlement.DueReceipt(receipt, v.sign_message(bytes(user.key), compute.domain, receipt), 0.0))
    return due


def measure_providers(compute: ComputeContracts, count: int, first_account: int) -> ProviderRow:
    gguf = ensure_gemma()  # only its hash is registered: no model server runs
    accounts = [first_account + i for i in range(count)]
    providers = [register(compute, a, f"http://127.0.0.1:{1 + i}", gguf) for i, a in enumerate(accounts)]
    with ThreadPoolExecutor(USERS) as pool:
        owed = list(pool.map(lambda _: _fund(compute, providers), range(USERS)))
    chunk_size = settlement.compute_chunk_size(int(compute.chain.w3.eth.get_block("latest")["gasLimit"]))
    gas = transactions = 0
    for index, account in enumerate(accounts):
        due = [receipts[index] for receipts in owed]
        for chunk in settlement.plan_settlement(due, chunk_size):
            gas += compute.settle_batch(devnet_account(account), [(d.receipt, d.signature) for d in chunk]).gas_used
            transactions += 1
    return ProviderRow(count, machine_load(), gas / (count * USERS), transactions)


def _parts() -> set[str]:
    return set(os.environ.get("ZGOS_BENCH_SCALE", "storage,da,compute").split(","))


def main() -> None:
    parts, started = _parts(), time.perf_counter()
    if "storage" in parts:
        storage = []
        for n in STORAGE_SIZES:
            try:
                storage.append(measure_storage(n))
            except RuntimeError as exc:  # a size too heavy for this machine: said, and the others still run
                print(f"  {n} nodes did not fit (load {machine_load()}): {exc}", flush=True)
                continue
            scale_report.storage_row(storage[-1])
        scale_report.storage(storage, FILE_MIB, IDLE_WINDOW_S, REPLICAS)
    if "da" in parts:
        scale_report.signers([measure_da(s) for s in SIGNER_COUNTS])
    if "compute" in parts:
        with bench_chain(CHAIN_BLOCK_S, CHAIN_ACCOUNTS) as bc:
            compute = ComputeContracts.from_deployment(bc.chain, bc.deployment)
            first = [FIRST_SPARE_ACCOUNT + sum(PROVIDER_COUNTS[:i]) for i in range(len(PROVIDER_COUNTS))]
            scale_report.providers([measure_providers(compute, c, a) for c, a in zip(PROVIDER_COUNTS, first, strict=True)],
                                   USERS)
    print(f"bench scale took {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
