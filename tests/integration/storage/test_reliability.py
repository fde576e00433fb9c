"""Reliability claims of the storage node: chain outages during log sync, kill -9 mid upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import httpx
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import start_node
from tests.integration.storage.tcpproxy import TcpProxy
from tests.servers import await_ready
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage.client import StorageClient, StorageError
from zgos.storage.contracts import FlowContract
from zgos.storage.hasher import build_file_tree
from zgos.storage.node.store import Store
from zgos.storage.spec.filetree import FileTree


def test_log_sync_retries_through_a_chain_rpc_outage_and_catches_up(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    target = urlparse(chain.rpc_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 8545)
    proxy.up()
    node = start_node(tmp_path / "node", chain, deployment, rpc_url=proxy.url)
    flow = FlowContract(chain, deployment.address("Flow"))
    try:
        first = flow.submit(new_account, [FileTree.from_bytes(b"before outage").submission()]).entries[0]
        assert wait_until(lambda: node.node.store.tx(first.seq) is not None, 20)
        proxy.down()
        errors_before = node.node.sync.state.errors
        during = [flow.submit(new_account, [FileTree.from_bytes(f"during {i}".encode()).submission()]).entries[0] for i in range(3)]
        assert wait_until(lambda: node.node.sync.state.errors > errors_before, 20), "the node noticed the outage"
        assert all(node.node.store.tx(e.seq) is None for e in during)
        proxy.up()
        assert wait_until(lambda: all(node.node.store.tx(e.seq) is not None for e in during), 30), "caught up"
        assert node.node.store.tx(during[-1].seq).entry.data_root == during[-1].data_root  # type: ignore[union-attr]
    finally:
        node.stop()
        proxy.down()


def _spawn_node(data_dir: DataDir, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "storage", "node",
            "--port", str(port), "--confirmations", "0", "--poll", "0.05", "--no-announce"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    await_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200,
                "the storage node", log, process)
    return process


def test_upload_resumes_after_node_kill(
    tmp_path: Path, devnet_dir: DataDir, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 * 1024 * 1024))
    tree = build_file_tree(path)
    process = _spawn_node(devnet_dir, port, tmp_path / "node.log")
    acknowledged = [0]
    failure: list[BaseException] = []

    def upload() -> None:
        with StorageClient([url], chain, deployment.address("Flow"), new_account, timeout_s=10) as client:
            try:
                client.upload(path, tree=tree, progress=lambda n: acknowledged.__setitem__(0, acknowledged[0] + n))
            except StorageError as exc:
                failure.append(exc)

    worker = threading.Thread(target=upload)
    worker.start()
    try:
        assert wait_until(lambda: acknowledged[0] >= 40 * 262_144, 120), "upload got going"
        process.send_signal(signal.SIGKILL)
        process.wait()
        worker.join(60)
        assert failure, "the interrupted upload reported an error"
        acked_segments = acknowledged[0] // 262_144
        process = _spawn_node(devnet_dir, port, tmp_path / "node.log")
        with StorageClient([url], chain, deployment.address("Flow"), new_account) as client:
            info = client.info(tree.root)
            held = info.info["uploadedSegNum"]
            assert held >= acked_segments, "nothing acknowledged was lost"
            result = client.upload(path, tree=tree)
            assert result.tx_hash is None, "the resumed upload does not submit again"
            assert result.segments_sent == tree.num_segments - held, "only missing segments are sent"
            assert result.root == tree.root
            assert client.info(tree.root).info["finalized"]
            out = tmp_path / "out.bin"
            client.download(tree.root, out)
            assert out.read_bytes() == path.read_bytes()
    finally:
        process.kill()
        process.wait()


def test_log_sync_resumes_from_its_persisted_cursor_after_restart(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    flow = FlowContract(chain, deployment.address("Flow"))
    node = start_node(tmp_path / "node", chain, deployment)
    first = flow.submit(new_account, [FileTree.from_bytes(b"one").submission()]).entries[0]
    assert wait_until(lambda: node.node.store.tx(first.seq) is not None, 20)
    node.stop()
    cursor = node.node.store.next_block(0)
    # read from disk as a restarted node does (the restarted node's own sync may move it at once)
    assert Store(tmp_path / "node" / "store.sqlite").next_block(0) == cursor > 0, "the cursor survived the restart"
    second = flow.submit(new_account, [FileTree.from_bytes(b"two").submission()]).entries[0]
    again = start_node(tmp_path / "node", chain, deployment)
    try:
        assert again.node.store.next_block(0) >= cursor
        assert wait_until(lambda: again.node.store.tx(second.seq) is not None, 20)
        seqs = [e.seq for e in again.node.store.entries()]
        assert seqs == sorted(set(seqs)) and seqs == list(range(seqs[0], seqs[-1] + 1)), "no gaps, no duplicates"

        def root_rebuilt() -> bool:  # other tests share the chain: the node may sync on between reads
            root, _ = again.node.flow_context()
            return root == flow.flow_root_by_seq(again.node.store.entries()[-1].seq)

        assert wait_until(root_rebuilt, 20), "flow root rebuilt after restart"
    finally:
        again.stop()


def test_log_sync_follows_a_chain_reorganisation_and_keeps_uploaded_data(tmp_path: Path) -> None:
    from zgos.chain.accounts import devnet_role
    from zgos.chain.anvil import Anvil, AnvilConfig
    from zgos.chain.deploy import deploy_all
    from zgos.devnet.plan import PLAN

    anvil = Anvil(AnvilConfig(port=free_port(), block_time_s=0.2), log_path=tmp_path / "anvil.log")
    anvil.start()
    try:
        chain = Chain(anvil.url)
        deployment = deploy_all(chain, devnet_role("deployer"), tmp_path / "deployment.json", PLAN)
        node = start_node(tmp_path / "node", chain, deployment)
        account = devnet_role("user")
        flow = FlowContract(chain, deployment.address("Flow"))
        path = tmp_path / "a.bin"
        path.write_bytes(os.urandom(300_000))
        try:
            with StorageClient([node.url], chain, deployment.address("Flow"), account) as client:
                uploaded = client.upload(path)
            block = node.node.store.tx(uploaded.tx_seq).entry.block_number  # type: ignore[union-attr]
            head = chain.block_number()
            chain.w3.provider.make_request("anvil_rollback", [head - block + 1])  # type: ignore[arg-type]
            # other blocks past the node's cursor at once (a loaded machine mines 0.2 s blocks slowly)
            chain.w3.provider.make_request("anvil_mine", [hex(head - block + 2)])  # type: ignore[arg-type]
            assert wait_until(lambda: node.node.sync.state.reorgs >= 1, 20), "the reorganisation was noticed"
            account = devnet_role("kv")  # the first account's rolled-back nonce is stale in its nonce book
            flow.submit(account, [FileTree.from_bytes(b"b" * 1000).submission()])
            on_chain = {e.seq: e for e in flow.submit_events(0, chain.block_number())}
            if not any(e.data_root == uploaded.root for e in on_chain.values()):
                flow.submit(account, [build_file_tree(path).submission()])  # the same file, again
                on_chain = {e.seq: e for e in flow.submit_events(0, chain.block_number())}
            last = max(on_chain)
            assert wait_until(lambda: node.node.store.tx(last) is not None, 20)
            for seq, entry in on_chain.items():
                assert node.node.store.tx(seq).entry.data_root == entry.data_root  # type: ignore[union-attr]
            a_seq = next(s for s, e in on_chain.items() if e.data_root == uploaded.root)
            assert wait_until(lambda: node.node.store.tx(a_seq).finalized, 20), "parked data finalized the file again"  # type: ignore[union-attr]
            assert node.node.flow_context()[0] == flow.flow_root_by_seq(last)
        finally:
            node.stop()
    finally:
        anvil.stop()
