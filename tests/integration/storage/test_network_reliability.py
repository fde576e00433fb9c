"""Issue 6 reliability claims across nodes: partitions, kill -9 during sync, lying registry entries."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import start_node
from tests.servers import await_ready
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.access import TOKEN_FILE, read_token
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage.client import StorageClient
from zgos.storage.discovery import discover
from zgos.storage.spec.shard import ShardConfig

SEGMENT = 256 * 1024


def rpc(url: str, method: str, *params: object) -> object:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=5).json()["result"]


def spawn_node(data_dir: DataDir, name: str, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "storage", "node", "--name", name,
            "--port", str(port), "--confirmations", "0", "--poll", "0.05", "--no-announce", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    await_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200,
                f"storage node {name}", log, process)
    return process


def test_partition_of_one_node_during_an_upload_to_3_nodes_with_2_replicas_succeeds_and_the_node_syncs_when_back(
    tmp_path: Path, devnet_dir: DataDir, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    a = start_node(tmp_path / "a", chain, deployment)
    c = start_node(tmp_path / "c", chain, deployment)
    port = free_port()
    b_url = f"http://127.0.0.1:{port}"
    b = spawn_node(devnet_dir, "storage-b", port, tmp_path / "b.log", "--peers", a.url, "--peers", c.url)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(12 * SEGMENT + 5))
    partitioned = threading.Event()

    def progress(n: int) -> None:
        if n and not partitioned.is_set():
            partitioned.set()
            b.send_signal(signal.SIGSTOP)  # b stops answering mid-upload

    try:
        with StorageClient([a.url, b_url, c.url], chain, deployment.address("Flow"), new_account, timeout_s=5) as client:
            result = client.upload(path, replicas=2, progress=progress)
        assert partitioned.is_set()
        assert rpc(a.url, "zgs_checkFileFinalized", result.tx_seq) is True
        assert rpc(c.url, "zgs_checkFileFinalized", result.tx_seq) is True, "the upload moved to the third node"
        b.send_signal(signal.SIGCONT)
        assert wait_until(lambda: rpc(b_url, "zgs_checkFileFinalized", result.tx_seq) is True, 90), "b synced"
        with StorageClient([b_url]) as only_b:
            only_b.download(result.root, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == path.read_bytes()
    finally:
        b.send_signal(signal.SIGCONT)
        b.kill()
        b.wait()
        a.stop()
        c.stop()


def test_kill_9_during_sync_loses_no_acknowledged_segment(
    tmp_path: Path, devnet_dir: DataDir, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    source = start_node(tmp_path / "source", chain, deployment)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(32 * 1024 * 1024))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("--peers", source.url, "--sync-workers", "1")
    process: subprocess.Popen[bytes] | None = None
    try:
        with StorageClient([source.url], chain, deployment.address("Flow"), new_account) as client:
            result = client.upload(path)
        process = spawn_node(devnet_dir, "storage-k", port, tmp_path / "k.log", *args)
        key = str(result.tx_seq)
        acked = [0]

        def progressed() -> bool:
            token = read_token(devnet_dir.root / TOKEN_FILE)  # the node's install token, made at its start
            answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "admin_getSyncInfo"},
                                headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
            files = answer["result"]["fileSync"]["files"]
            acked[0] = files[key]["held"] if key in files else 0
            return acked[0] >= 4

        assert wait_until(progressed, 120, interval_s=0.01), "sync got going"
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert acked[0] < 128, "killed in the middle of the sync"
        store = devnet_dir.service("storage-k") / "store.sqlite"
        db = sqlite3.connect(store)
        (held,) = db.execute("SELECT COUNT(*) FROM segments WHERE seq = ?", (result.tx_seq,)).fetchone()
        db.close()
        assert held >= acked[0], "every segment reported as held survived kill -9"
        process = spawn_node(devnet_dir, "storage-k", port, tmp_path / "k.log", *args)
        assert wait_until(lambda: rpc(url, "zgs_checkFileFinalized", result.tx_seq) is True, 90), "sync resumed"
        with StorageClient([url]) as only:
            only.download(result.root, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == path.read_bytes()
    finally:
        if process is not None:
            process.kill()
            process.wait()
        source.stop()


def _funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


def test_registry_entries_with_bad_urls_unreachable_nodes_and_shard_liars_are_skipped_with_a_logged_reason(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount, caplog: pytest.LogCaptureFixture,
    refused_url: str,
) -> None:
    honest = start_node(tmp_path / "honest", chain, deployment, shard=ShardConfig(1, 2))
    liar = start_node(tmp_path / "liar", chain, deployment, shard=ShardConfig(0, 2))
    registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
    unreachable = refused_url
    entries: list[tuple[LocalAccount, str, int, int]] = [
        (new_account, "ftp://files.example", 0, 1),
        (_funded(chain), unreachable, 0, 1),
        (_funded(chain), liar.url, 0, 1),  # announces the whole flow, serves half
        (_funded(chain), honest.url, 1, 2),
    ]
    try:
        for account, url, shard_id, num_shard in entries:
            registry.announce(account, NodeKind.STORAGE, url, shard_id=shard_id, num_shard=num_shard)
        with caplog.at_level(logging.WARNING):
            start = time.monotonic()
            found = discover(registry, policy=DEVNET_POLICY, chain_id=chain.chain_id,
                             flow_address=deployment.address("Flow"))
            elapsed = time.monotonic() - start
        urls = {peer.url for peer in found}
        assert honest.url in urls and liar.url not in urls and unreachable not in urls
        assert "not http or https" in caplog.text
        assert f"{unreachable} from registry" in caplog.text and "unreachable (ConnectError)" in caplog.text
        assert "announced shard 0/1 on chain but serves shard 0/2" in caplog.text
        assert elapsed < 10, "probes run in parallel with a short timeout"
        with StorageClient(sorted(urls & {honest.url})) as client:
            assert client.nodes[0].shard() == ShardConfig(1, 2)
    finally:
        for account, *_ in entries:
            registry.remove(account, NodeKind.STORAGE)
        honest.stop()
        liar.stop()
