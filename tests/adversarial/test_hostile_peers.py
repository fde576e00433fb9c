"""Issue 12 "peers are probed like strangers": a tarpit announced in the NodeRegistry and a peer
with an endless body, against the real CLI, the real indexer process and real storage nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.adversarial.hostile_http import HostileServer, endless_body, jsonrpc_peer, relay, tarpit
from tests.integration.clirunner import zg
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage.client import StorageClient
from zgos.storage.discovery import PROBE_DEADLINE_S
from zgos.storage.node.peersync import MAX_PEER_RESPONSE_BYTES
from zgos.storage.node.syncstatus import sync_info

# Between the discovery probe and the upload's first request: the rest of discovery, hashing
# the file, building the client (tenths of a second on a loaded machine).
DISCOVERY_SLACK_S = 2.0
SOCKET_BUFFERS_BYTES = 16 * 1024 * 1024  # what kernel buffers may absorb beyond the cap
REFRESH_S = 1.0


def _funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> Iterator[tuple[NodeRegistry, list[LocalAccount]]]:
    """The session NodeRegistry; every entry a test announces is removed afterwards."""
    announced: list[LocalAccount] = []
    yield NodeRegistry(chain, deployment.address("NodeRegistry")), announced
    for operator in announced:
        NodeRegistry(chain, deployment.address("NodeRegistry")).remove(operator, NodeKind.STORAGE)


def _announce(chain: Chain, entries: tuple[NodeRegistry, list[LocalAccount]], url: str) -> None:
    registry, announced = entries
    operator = _funded(chain)
    registry.announce(operator, NodeKind.STORAGE, url)
    announced.append(operator)


PROBE_METHODS = ("zgs_getShardConfig", "zgs_getStatus")


def test_a_tarpit_registry_entry_delays_an_upload_by_at_most_one_probe_deadline(
    tmp_path: Path, chain: Chain, deployment: Deployment, devnet_dir: DataDir,
    registry: tuple[NodeRegistry, list[LocalAccount]],
) -> None:
    """The node sits behind a relay that time-stamps what the client asks it: the upload's first
    request after the discovery probe is measured from that probe, so the delay the tarpit
    causes is read off one process, not from two runs on a loaded machine."""
    node = start_node(tmp_path / "node", chain, deployment)
    try:
        with HostileServer(relay(node.url)) as front, HostileServer(tarpit(interval_s=2.0)) as pit:
            _announce(chain, registry, front.url)
            _announce(chain, registry, pit.url)
            path = tmp_path / "data.bin"
            path.write_bytes(os.urandom(300_000))
            upload = zg(devnet_dir.root, "storage", "upload", str(path), timeout=180)
            assert upload.returncode == 0, upload.stdout + upload.stderr
            asked = [(r.rpc_method(), r.received_at) for r in front.requests]
            probed = next(at for method, at in asked if method == "zgs_getStatus")  # the probe's last call
            uploading = next(at for _, at in asked if at > probed)
            assert pit.requests and pit.requests[0].rpc_method() in PROBE_METHODS, "the tarpit was probed"
            assert "deadline" in upload.stderr, upload.stderr  # skipped, with the reason logged
            assert uploading - probed <= PROBE_DEADLINE_S + DISCOVERY_SLACK_S, asked
    finally:
        node.stop()


def test_the_indexer_snapshot_age_stays_under_three_refresh_intervals_with_a_tarpit_entry(
    tmp_path: Path, chain: Chain, deployment: Deployment, devnet_dir: DataDir,
    registry: tuple[NodeRegistry, list[LocalAccount]],
) -> None:
    node = start_node(tmp_path / "node", chain, deployment)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "indexer.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    indexer: subprocess.Popen[bytes] | None = None
    with HostileServer(tarpit(interval_s=2.0)) as pit:
        try:
            _announce(chain, registry, pit.url)
            _announce(chain, registry, node.url)
            indexer = subprocess.Popen(
                [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "storage", "indexer",
                 "--port", str(port), "--refresh", str(REFRESH_S)], stdout=log, stderr=subprocess.STDOUT, env=env)
            assert wait_until(lambda: httpx.get(f"{url}/node/status", timeout=1).json()["refreshedAt"] > 0, 60)
            ages = []
            deadline = time.monotonic() + 4 * PROBE_DEADLINE_S  # past the tarpit's first probe and its backoff
            while time.monotonic() < deadline:
                status = httpx.get(f"{url}/node/status", timeout=5).json()
                ages.append(status["ageSecs"])
                time.sleep(0.2)
            assert max(ages) < 3 * REFRESH_S, ages
            assert node.url in {n["url"] for n in status["nodes"]}
            skipped = {s["url"]: s for s in status["skipped"]}[pit.url]
            assert "deadline" in skipped["reason"] and skipped["score"] < 0 and skipped["retryInSecs"] > 0, skipped
            assert skipped["failures"] <= 2, "backed off, not probed every refresh"
        finally:
            if indexer is not None:
                indexer.send_signal(signal.SIGTERM)
                indexer.wait(timeout=30)
            log.close()
            node.stop()


def test_an_endless_body_from_a_peer_is_cut_at_the_size_cap(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    honest = start_node(tmp_path / "honest", chain, deployment)
    identity = {"chainId": chain.chain_id, "flowAddress": deployment.address("Flow")}
    answers = {"zgs_getShardConfig": {"shardId": 0, "numShard": 1},
               "zgs_getStatus": {"networkIdentity": identity},
               "zgs_getFileInfoByTxSeq": {"finalized": True, "uploadedSegNum": 1}}
    syncing: RunningNode | None = None
    with HostileServer(jsonrpc_peer(answers, endless_body())) as flood:
        try:
            path = tmp_path / "data.bin"
            path.write_bytes(os.urandom(200_000))
            with StorageClient([honest.url], chain, deployment.address("Flow"), new_account) as client:
                result = client.upload(path)
            # the flooding peer is listed first, so it is asked first
            syncing = start_node(tmp_path / "syncing", chain, deployment, peers=(flood.url, honest.url))
            assert wait_until(lambda: syncing is not None and syncing.node.store.tx(result.tx_seq) is not None
                              and syncing.node.store.tx(result.tx_seq).finalized, 60), sync_info(syncing.node.peer_sync)
            flooded = [sent for request, sent in zip(flood.requests, flood.sent_per_answer, strict=True)
                       if request.rpc_method() == "zgs_downloadSegmentWithProofByTxSeq"]
            assert flooded, "the flooding peer was asked for a segment"
            # (the node syncs every file of the session chain, several at once, so the flood may be
            # asked a few times before its first answer is cut: each answer is capped)
            assert max(flooded) < MAX_PEER_RESPONSE_BYTES + SOCKET_BUFFERS_BYTES, flooded
            peer = {p["url"]: p for p in sync_info(syncing.node.peer_sync)["peers"]}[flood.url]
            assert "cap" in peer["lastError"] and peer["score"] < 0 and peer["backedOffSecs"] > 0, peer
            assert syncing.node.store.segment(result.tx_seq, 0) is not None, "the honest peer's copy was stored"
        finally:
            if syncing is not None:
                syncing.stop()
            honest.stop()
