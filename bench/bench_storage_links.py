"""Storage over real links: a verified download of a file spread over 4 shard nodes vs the same
file from 1 node holding all of it, each node on a host of its own whose uplink is shaped by the
kernel (issue 20: "from 4 shard nodes, verified download >= 1.5x the one-node figure; it is bound
by the client's cores").

``bench_storage_network`` runs the same comparison with every node a plain local process, where
five processes share the client's two cores and nothing is left to gain from spreading a file.
Here each node runs in a network namespace of its own (``tests.multihost.netns.Lab``), joined to
the client's by a veth pair whose node side is shaped with ``tbf`` to ``ZGOS_BENCH_LINK_MBIT``
(default 1,000: a 1 Gbit/s uplink). One node is then bound by its link, as a remote node is; four
nodes give four links, and the download is bound by whatever binds first: the links or the
client's cores (which still run the nodes too). ``tbf`` costs the kernel next to nothing, unlike
a userspace proxy. The chain runs on a host of its own; the client uploads and downloads from its
host through the Python API (in a thread inside the client's namespace), as ``bench storage``
does. Needs root and ``ip netns``: skipped with a message otherwise.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.bench_storage_network import best_download
from bench.harness import report
from tests.multihost.netns import Lab, netns_available, zg_env
from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import deploy_all
from zgos.devnet.plan import PLAN
from zgos.runtime.netutil import http_ok, rpc_ready, wait_until
from zgos.runtime.ports import CHAIN_PORT, STORAGE_PORT
from zgos.storage.client import DEFAULT_WORKERS, StorageClient

MIB = 1024 * 1024
FILE_MIB = int(os.environ.get("ZGOS_BENCH_TRANSFER_MIB", "256"))
LINK_MBIT = int(os.environ.get("ZGOS_BENCH_LINK_MBIT", "1000"))
LINK_BURST = "1mb"  # tbf's bucket: at least rate / HZ, or the link cannot reach its rate
SHARDS = 4
READY_S = 60.0
NODE_HOSTS = (*(f"s{i}" for i in range(SHARDS)), "full")


def _shape(lab: Lab, host: str, mbit: int) -> None:
    """Host ``host``'s uplink (its ``eth0`` egress) limited to ``mbit`` Mbit/s by the kernel."""
    shaped = lab.run(host, ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", f"{mbit}mbit",
                            "burst", LINK_BURST, "latency", "50ms"])
    if shaped.returncode != 0:
        raise RuntimeError(f"tc tbf on {host}: {shaped.stderr.strip()}")


def _start_node(lab: Lab, work: Path, rpc: str, deployment: Path, host: str, shard: str, account: int) -> str:
    """A storage node on ``host`` holding ``shard``; its URL once the client's host reaches it."""
    address = lab[host].address
    url = f"http://{address}:{STORAGE_PORT}"
    # a slow poll: the file is on the nodes before any download (see bench_storage_network)
    lab.spawn(host, [sys.executable, "-m", "zgos.cli", "--data-dir", str(work / host), "storage", "node",
                     "--rpc-url", rpc, "--deployment", str(deployment), "--host", address,
                     "--port", str(STORAGE_PORT), "--account", f"devnet:{account}", "--confirmations", "0",
                     "--poll", "1", "--no-announce", "--no-sync", "--shard", shard],
              work / f"{host}.log", env=zg_env(ZGOS_OUTBOUND_ALLOW="private"))
    if not wait_until(lambda: lab.run_on("client", lambda: _answers(http_ok, f"{url}/health")), READY_S):
        raise RuntimeError(f"{host}'s node did not start; see {work / host}.log")
    return url


def _answers(probe: Callable[[str], bool], url: str) -> bool:
    try:
        return probe(url)
    except (httpx.HTTPError, OSError):
        return False


def bench_shaped_links(lab: Lab, work: Path) -> None:
    rpc = f"http://{lab['chain'].address}:{CHAIN_PORT}"
    lab.spawn("chain", AnvilConfig(host=lab["chain"].address, port=CHAIN_PORT, block_time_s=None).argv(),
              work / "anvil.log")
    if not wait_until(lambda: lab.run_on("client", lambda: _answers(rpc_ready, rpc)), READY_S):
        raise RuntimeError(f"the chain did not start; see {work / 'anvil.log'}")
    chain = lab.run_on("client", lambda: Chain(rpc))
    deployment = lab.run_on("client", lambda: deploy_all(chain, devnet_role("deployer"), work / "deployment.json", PLAN))
    for host in NODE_HOSTS:
        _shape(lab, host, LINK_MBIT)
    sharded = [_start_node(lab, work, rpc, work / "deployment.json", f"s{i}", f"{i}/{SHARDS}", 1 + i)
               for i in range(SHARDS)]
    full = _start_node(lab, work, rpc, work / "deployment.json", "full", "0/1", 1 + SHARDS)
    path = work / "big.bin"
    with path.open("wb") as handle:
        for _ in range(FILE_MIB):
            handle.write(os.urandom(MIB))
    account, flow = devnet_role("user"), deployment.address("Flow")

    def upload(nodes: list[str]) -> bytes:
        with StorageClient(nodes, chain, flow, account) as client:
            return client.upload(path).root

    root = lab.run_on("client", lambda: upload(sharded))
    lab.run_on("client", lambda: upload([full]))  # same root: no second transaction
    size_mb, out = path.stat().st_size / 1e6, work / "out.bin"
    one = size_mb / lab.run_on("client", lambda: best_download([full], root, out, DEFAULT_WORKERS))
    four = size_mb / lab.run_on("client", lambda: best_download(sharded, root, out, DEFAULT_WORKERS))
    report(f"verified download of {FILE_MIB} MiB over {SHARDS} shard hosts vs 1 host, each node's uplink "
           f"{LINK_MBIT} Mbit/s ({LINK_MBIT / 8:g} MB/s, tc tbf); load {os.getloadavg()[0]:.1f}",
           four, one, "MB/s", ">= 1.5x")


def main() -> None:
    if not netns_available():
        print("skipped: needs root and `ip netns` (Linux network namespaces)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="zgos-bench-links-") as tmp:
        lab = Lab(("chain", "client", *NODE_HOSTS)).up()
        try:
            bench_shaped_links(lab, Path(tmp))
        finally:
            lab.down()


if __name__ == "__main__":
    main()
