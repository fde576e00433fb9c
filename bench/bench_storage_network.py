"""Storage network benchmark: a verified download of a file spread over 4 shard nodes
(``--shard i/4``, each holding a quarter) vs the same file from 1 node holding all of it, all
nodes local subprocesses on one machine (goal >= 1.0x: sharding costs nothing).

Both with the client's defaults (``workers`` = 4 requests in flight per node, at most 2 per
client core: 4 for 4 nodes and for 1 node on 2 cores, ``download_threads``). Each download runs
twice per setup; the faster run counts (the machine is shared and noisy).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import BenchChain, bench_chain, report, start_zg, wait_healthy
from zgos.chain.accounts import devnet_role
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port
from zgos.storage.client import DEFAULT_WORKERS, StorageClient

MIB = 1024 * 1024
FILE_MIB = int(os.environ.get("ZGOS_BENCH_TRANSFER_MIB", "256"))
SHARDS = 4
RUNS = 2


def _spawn_node(data_dir: DataDir, name: str, shard: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # a slow poll: the file is on the nodes before any download, and five nodes polling the chain
    # at 20 Hz take half a core from the download they are measured in (idle: 8% of a core each)
    process = start_zg(data_dir.root, log, "storage", "node", "--name", name, "--port", str(port),
                       "--confirmations", "0", "--poll", "1", "--no-announce", "--no-sync", "--shard", shard)
    wait_healthy(process, url, log)
    return process, url


def best_download(nodes: list[str], root: bytes, out: Path, workers: int) -> float:
    """Best time of ``RUNS`` verified downloads, in seconds."""
    times = []
    for _ in range(RUNS):
        with StorageClient(nodes, workers=workers) as client:
            start = time.perf_counter()
            client.download(root, out)
            times.append(time.perf_counter() - start)
        out.unlink()
    return min(times)


def bench_sharded_download(bc: BenchChain) -> None:
    work = bc.workdir
    path = work / "big.bin"
    with path.open("wb") as handle:
        for _ in range(FILE_MIB):
            handle.write(os.urandom(MIB))
    data_dir = DataDir(work / "data")
    data_dir.root.mkdir()
    data_dir.network.write_text(f'{{"rpc_url": "{bc.anvil.url}", "chain_id": {bc.chain.chain_id}}}')
    bc.deployment.save(data_dir.deployment)
    processes = []
    try:
        sharded = []
        for i in range(SHARDS):
            process, url = _spawn_node(data_dir, f"shard-{i}", f"{i}/{SHARDS}", work / f"shard-{i}.log")
            processes.append(process)
            sharded.append(url)
        process, full = _spawn_node(data_dir, "full", "0/1", work / "full.log")
        processes.append(process)
        account = devnet_role("user")
        flow = bc.deployment.address("Flow")
        with StorageClient(sharded, bc.chain, flow, account) as client:
            result = client.upload(path)
        with StorageClient([full], bc.chain, flow, account) as client:
            client.upload(path)  # same root: no second transaction, all segments to the one node
        size_mb = path.stat().st_size / 1e6
        out = work / "out.bin"
        one = size_mb / best_download([full], result.root, out, DEFAULT_WORKERS)
        four = size_mb / best_download(sharded, result.root, out, DEFAULT_WORKERS)
        report(f"verified download of {FILE_MIB} MiB spread over {SHARDS} shard nodes vs from 1 node "
               f"(client defaults)", four, one, "MB/s", ">= 1.0x")
    finally:
        for process in processes:
            process.kill()
            process.wait()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="zgos-bench-net-"), bench_chain() as bc:
        bench_sharded_download(bc)


if __name__ == "__main__":
    main()
