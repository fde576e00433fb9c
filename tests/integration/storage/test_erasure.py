"""Erasure-coded files (--ec k+m) on six sharded nodes: uploads, downloads that rebuild lost
segments, health, and repair after losing whole nodes (kill -9 + data deleted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.cdp import CHROMIUM, Browser
from tests.integration.clirunner import zg
from tests.integration.explorer.explorer_fixtures import running_explorer, show_page
from tests.integration.storage.conftest import start_node
from tests.integration.storage.httpproxy import StorageNodeProxy
from tests.integration.storage.indexer_fixtures import start_indexer
from tests.servers import await_ready
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_contract
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage import ecrepair
from zgos.storage.client import StorageError
from zgos.storage.contracts import FlowContract
from zgos.storage.ecclient import ErasureClient, HealthReport
from zgos.storage.spec.erasure import ErasureParams
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.shard import ShardConfig

SEGMENT = 256 * 1024
# Six nodes whose shards partition the flow: two hold a quarter each, four an eighth each.
SHARDS = ("0/4", "1/4", "2/8", "3/8", "6/8", "7/8")


@dataclass
class Cluster:
    data_dir: DataDir
    log: Path
    ports: list[int]
    processes: list[subprocess.Popen[bytes] | None]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self, i: int) -> None:
        argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(self.data_dir.root), "storage", "node",
                "--name", f"ec-{i}", "--port", str(self.ports[i]), "--shard", SHARDS[i],
                "--confirmations", "0", "--poll", "0.1", "--no-announce"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
        self.processes[i] = subprocess.Popen(argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        for i, url in enumerate(self.urls):
            await_ready(lambda u=url: httpx.get(u + "/health", timeout=1).status_code == 200,
                        f"storage node ec-{i}", self.log, self.processes[i])

    def kill_and_wipe(self, i: int) -> None:
        """kill -9 node i and delete its data, as a lost machine."""
        process = self.processes[i]
        assert process is not None
        process.kill()
        process.wait()
        self.processes[i] = None
        shutil.rmtree(self.data_dir.service(f"ec-{i}"))

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path, devnet_dir: DataDir) -> Iterator[Cluster]:
    running = Cluster(devnet_dir, tmp_path / "nodes.log", [free_port() for _ in SHARDS], [None] * len(SHARDS))
    try:
        for i in range(len(SHARDS)):
            running.start(i)
        running.wait_ready()
        yield running
    finally:
        running.stop()


def client(cluster: Cluster, chain: Chain, deployment: Deployment) -> ErasureClient:
    return ErasureClient(cluster.urls, chain, deployment.address("Flow"), deployment.address("ErasureRegistry"),
                         timeout_s=10)


def explorer_erasure_panel(tmp_path: Path, chain: Chain, deployment_path: Path, cluster: Cluster,
                           root: bytes) -> dict[str, Any]:
    """What the explorer's file page says of ``root``'s stripes, with the cluster's nodes
    announced in a NodeRegistry of its own (the cluster does not announce in the session's)."""
    deployer = devnet_role("deployer")
    registry = NodeRegistry(chain, deploy_contract(chain, deployer, "NodeRegistry", []))
    for url, shard in zip(cluster.urls, SHARDS, strict=True):
        operator = Account.create()
        chain.transact(deployer, to=operator.address, value=10**17)
        shard_id, num_shard = (int(part) for part in shard.split("/"))
        registry.announce(operator, NodeKind.STORAGE, url, shard_id=shard_id, num_shard=num_shard)
    with running_explorer(tmp_path, chain, deployment_path, {"NodeRegistry": registry.contract.address}) as explorer:
        answer = httpx.get(f"{explorer}/api/storage/file/0x{root.hex()}/erasure", timeout=60)
        if CHROMIUM is not None:  # and as a person sees it: the stripes drawn, the verdict in words
            with Browser(tmp_path / "profile") as browser:
                text = show_page(browser, f"{explorer}/#/file/0x{root.hex()}", "file", "ec-file")
            for shown in ("Erasure coding 4+2", "survives 0 more node loss(es)", "degraded", cluster.urls[0]):
                assert shown in text, f"{shown!r} is not on the file page: {text[:800]!r}"
    assert answer.status_code == 200, answer.text
    panel: dict[str, Any] = answer.json()
    return panel


@pytest.mark.slow
def test_ec_file_survives_two_lost_nodes_and_two_more_after_repair(
    tmp_path: Path, cluster: Cluster, chain: Chain, deployment: Deployment, deployment_path: Path,
) -> None:
    """Through the CLI as a user would: upload --ec 4+2, lose 2 nodes (kill -9 + data deleted),
    download (client, gateway), health, replace the nodes, repair, lose 2 others, download."""
    data = os.urandom(13 * SEGMENT + 1234)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    root = FileTree.from_bytes(data).root
    nodes = [arg for url in cluster.urls for arg in ("--node", url)]
    done = zg(cluster.data_dir.root, "storage", "upload", str(path), "--ec", "4+2", *nodes)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0x" + root.hex() in done.stdout, "the data root is the plain 0G root of the bytes"
    assert "parityRoot" in done.stdout and "4+2" in done.stdout
    with client(cluster, chain, deployment) as ec:
        assert ec.health(root).survives == 2
        parity_root = ec.health(root).record.parity_root
    gateway = start_indexer(tmp_path / "indexer", chain, deployment, peers=tuple(cluster.urls), registry=False)
    try:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        size, chunks = gateway.indexer.read(root, scratch)
        assert size == len(data) and not list(scratch.iterdir()), "a healthy file streams: nothing rebuilt first"
        assert b"".join(chunks) == data
        for i in (0, 3):  # a quarter node and an eighth node
            cluster.kill_and_wipe(i)
        out = tmp_path / "out1.bin"
        with client(cluster, chain, deployment) as ec:
            assert ec.download(root, out) == len(data)
            assert out.read_bytes() == data and FileTree.from_bytes(out.read_bytes()).root == root
            assert ec.health(root).survives == 0
        info = httpx.get(f"{gateway.url}/file/info/0x{root.hex()}").json()  # a call to the lost nodes fails:
        gateway.directory.refresh()  # so this round probes them again, before their re-probe time
        assert len(httpx.get(gateway.url + "/node/status").json()["skipped"]) == 2, "the lost nodes are skipped"
        size, chunks = gateway.indexer.read(root, scratch)
        assert size == len(data) and b"".join(chunks) == data
        assert not list(scratch.iterdir()), "a degraded file streams too, its lost segments rebuilt as they come"
        assert info["ec"]["k"] == 4 and info["ec"]["parityRoot"] == "0x" + parity_root.hex()
        served = httpx.get(gateway.url + "/file", params={"root": "0x" + root.hex()}, timeout=60)
        assert served.status_code == 200 and served.content == data, "the gateway rebuilds and proves too"
    finally:
        gateway.stop()
    panel = explorer_erasure_panel(tmp_path / "explorer", chain, deployment_path, cluster, root)
    assert (panel["ec"], panel["survivesMoreLosses"], panel["unreadable"]) == ("4+2", 0, 0), panel
    assert panel["stripesTotal"] == len(panel["stripes"]) >= panel["degraded"] >= 1, panel
    assert all(s["present"] >= 4 for s in panel["stripes"]), "each stripe still readable"
    assert sorted(panel["deadNodes"]) == sorted(cluster.urls[i] for i in (0, 3))
    health = zg(cluster.data_dir.root, "storage", "health", "0x" + root.hex(), *nodes)
    assert health.returncode == 0 and "survives 0 more node loss(es)" in health.stdout, health.stdout + health.stderr
    for i in (0, 3):  # replacements for the lost machines, empty, on the same shards
        cluster.start(i)
    cluster.wait_ready()
    repaired = zg(cluster.data_dir.root, "storage", "repair", "0x" + root.hex(), *nodes)
    assert repaired.returncode == 0 and "the file now survives 2 more" in repaired.stdout, repaired.stdout + repaired.stderr
    assert "whole file" not in repaired.stdout + repaired.stderr, "only the stripes that lost pieces were read"
    with client(cluster, chain, deployment) as ec:
        after = ec.health(root)
        assert after.survives == 2 and not after.missing
    for i in (1, 4):  # two different nodes
        cluster.kill_and_wipe(i)
    out = tmp_path / "out2.bin"
    got = zg(cluster.data_dir.root, "storage", "download", "0x" + root.hex(), str(out), *nodes)
    assert got.returncode == 0 and "erasure-coded" in got.stdout, got.stdout + got.stderr
    assert out.read_bytes() == data

    # The repair worker finds the file on its own (ErasureRegistry events) and heals it.
    for i in (1, 4):
        cluster.start(i)
    cluster.wait_ready()
    worker = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(cluster.data_dir.root), "storage", "repair",
         "--watch", "1", *nodes],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def healed() -> bool:
            with client(cluster, chain, deployment) as ec:
                report = ec.health(root)
                return report.survives == 2 and not report.missing
        assert wait_until(healed, 120, interval_s=1.0), "the worker restored the lost pieces"
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0 and "0x" + root.hex() in output and "Traceback" not in output, output


def test_repair_after_losing_two_neighbouring_shards_rebuilds_the_partner_first_not_the_whole_file(
    tmp_path: Path, cluster: Cluster, chain: Chain, deployment: Deployment, caplog: pytest.LogCaptureFixture,
) -> None:
    """Nodes 0/4 and 1/4 hold neighbouring segments: a rebuilt piece's partner is lost too, so
    the partner is rebuilt first for its root, and repair stays stripe by stripe."""
    data = os.urandom(9 * SEGMENT + 77)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    account = devnet_role("user")
    with ErasureClient(cluster.urls, chain, deployment.address("Flow"), deployment.address("ErasureRegistry"),
                       account, timeout_s=10) as ec:
        root = ec.upload(path, ErasureParams(4, 2)).root
    for i in (0, 1):
        cluster.kill_and_wipe(i)
        cluster.start(i)
    cluster.wait_ready()
    with client(cluster, chain, deployment) as ec:
        size, chunks = ec.stream(root)  # each lost segment's partner is lost too: proven from neighbours
        assert size == len(data) and b"".join(chunks) == data
    with client(cluster, chain, deployment) as ec, caplog.at_level("WARNING", "zgos.storage.ecclient"):
        before, restored = ec.repair(root)
        after = ec.health(root)
    assert before.survives == 0 and restored == sum(len(p) for p in before.missing.values()) > 0
    assert after.survives == 2 and not after.missing
    assert "from the whole file" not in caplog.text


def test_ec_upload_refuses_bad_ec_input_before_paying(
    tmp_path: Path, devnet_dir: DataDir, chain: Chain, deployment: Deployment,
) -> None:
    running = [start_node(tmp_path / f"n{i}", chain, deployment, shard=ShardConfig.parse(s)) for i, s in enumerate(SHARDS)]
    try:
        path = tmp_path / "small.bin"
        path.write_bytes(os.urandom(SEGMENT))
        nodes = [arg for node in running for arg in ("--node", node.url)]
        flow = FlowContract(chain, deployment.address("Flow"))
        before = flow.num_submissions()
        for ec, message in (("4", "must look like K+M"), ("8+2", "needs 10 nodes in distinct shards")):
            bad = zg(devnet_dir.root, "storage", "upload", str(path), "--ec", ec, *nodes)
            assert bad.returncode == 1 and message in bad.stdout + bad.stderr, (ec, bad.stdout, bad.stderr)
            assert "Traceback" not in bad.stderr
        assert flow.num_submissions() == before, "nothing was submitted or paid"
        with ErasureClient([n.url for n in running], chain, None, deployment.address("ErasureRegistry")) as ec, \
                pytest.raises(StorageError, match="not uploaded with erasure coding"):
            ec.health(os.urandom(32))
    finally:
        for node in running:
            node.stop()


def test_repair_decodes_before_hashing_and_a_rotten_piece_is_found_dropped_and_fetched_again(
    tmp_path: Path, cluster: Cluster, chain: Chain, deployment: Deployment, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Repair decodes the pieces it fetched before hashing their data; a node that streams a
    rotten piece (a flipped byte, a valid proof) makes a rebuilt piece fail its proof, so the
    pieces are hashed, the rotten one is dropped (named, scored down) and the stripe decoded
    again. Windows of 2 stripes: the repair works through the file a window at a time."""
    monkeypatch.setattr(ecrepair, "REPAIR_WINDOW_STRIPES", 2)
    data = os.urandom(17 * SEGMENT + 99)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    with ErasureClient(cluster.urls, chain, deployment.address("Flow"), deployment.address("ErasureRegistry"),
                       devnet_role("user"), timeout_s=10) as ec:
        root = ec.upload(path, ErasureParams(4, 2)).root
    cluster.kill_and_wipe(2)
    cluster.start(2)
    cluster.wait_ready()
    rotten = [StorageNodeProxy(url, rot_frames=True) for url in cluster.urls[:2]]  # the two quarter nodes
    try:
        nodes = [proxy.url for proxy in rotten] + cluster.urls[2:]
        with ErasureClient(nodes, chain, deployment.address("Flow"), deployment.address("ErasureRegistry"),
                           timeout_s=10) as ec, caplog.at_level("WARNING", "zgos.storage.ecrepair"):
            before, restored = ec.repair(root)
            after = ec.health(root)
            assert any(ec.storage.scores.score(proxy.url) < 0 for proxy in rotten), "the rotten node is scored down"
    finally:
        for proxy in rotten:
            proxy.stop()
    assert len({stripe for stripe, _ in _stripes_of(before)}) > 2, "more than one window"
    assert restored == sum(len(p) for p in before.missing.values()) > 0
    assert after.survives == 2 and not after.missing, "every lost piece is back, proven (the node checks each too)"
    assert "served a corrupt" in caplog.text and any(proxy.url in caplog.text for proxy in rotten), caplog.text
    for i in (0, 1):  # the rebuilt pieces are right: the file reads without the quarter nodes
        cluster.kill_and_wipe(i)
    out = tmp_path / "out.bin"
    with client(cluster, chain, deployment) as ec:
        assert ec.download(root, out) == len(data) and out.read_bytes() == data


def _stripes_of(report: HealthReport) -> list[tuple[int, str]]:
    """(stripe, node url) of every piece the report says a live node lacks."""
    return [(s.stripe, url) for s in report.stripes for p in s.pieces for url, pieces in report.missing.items()
            if (p.kind, p.index) in pieces]
