"""Peer sync, repair and pruning between real nodes (storage.md §4.4, §4.5; issue 6 part 2, 4)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.netutil import wait_until
from zgos.storage.client import StorageClient, UploadResult
from zgos.storage.contracts import FlowContract
from zgos.storage.scores import BAN_S, PeerScores
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.shard import ShardConfig

SEGMENT = 256 * 1024


def rpc(url: str, method: str, *params: object) -> object:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()["result"]


def upload(path: Path, nodes: list[RunningNode], chain: Chain, deployment: Deployment, account: LocalAccount,
           replicas: int = 1) -> UploadResult:
    with StorageClient([n.url for n in nodes], chain, deployment.address("Flow"), account) as client:
        return client.upload(path, replicas=replicas)


def download_from(node: RunningNode, result: UploadResult, out: Path) -> bytes:
    with StorageClient([node.url]) as client:
        client.download(result.root, out)
    return out.read_bytes()


def corrupt_every_segment(node: RunningNode, seq: int) -> None:
    """Flip one byte of every stored segment of ``seq`` behind the node's back."""
    db = sqlite3.connect(node.node.store.path)
    for (idx,) in db.execute("SELECT idx FROM segments WHERE seq = ?", (seq,)).fetchall():
        data = node.node.store.segment(seq, idx)
        assert data is not None
        flipped = bytes([data[0] ^ 0xFF]) + bytes(data[1:])  # a row's own bytes override its segment file's
        db.execute("UPDATE segments SET data = ? WHERE seq = ? AND idx = ?", (flipped, seq, idx))
    db.commit()
    db.close()


def test_node_fills_its_shard_from_peers_and_finalizes(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    full = start_node(tmp_path / "full", chain, deployment)
    half = start_node(tmp_path / "half", chain, deployment, shard=ShardConfig(1, 2), peers=(full.url,))
    try:
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(6 * SEGMENT + 99))
        result = upload(path, [full], chain, deployment, new_account)
        assert wait_until(lambda: rpc(half.url, "zgs_checkFileFinalized", result.tx_seq) is True, 90), "synced"
        record = half.node.store.tx(result.tx_seq)
        assert record is not None
        assert half.node.store.segment_indexes(result.tx_seq) == list(half.node.shard_segments(record.entry))
        assert half.admin("admin_getSyncStatus", result.tx_seq) == "Completed"
        info = half.admin("admin_getSyncInfo")
        assert info["fileSync"]["segmentsFetched"] >= 3 and info["fileSync"]["stuck"] == []
        assert info["fileSync"]["peers"][0]["url"] == full.url
        with StorageClient([half.url, full.url]) as client:  # segments come from both nodes
            client.download(result.root, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == path.read_bytes()
    finally:
        half.stop()
        full.stop()


def test_byzantine_peer_serving_corrupted_segments_is_detected_scored_down_and_avoided(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    bad = start_node(tmp_path / "bad", chain, deployment)
    good = start_node(tmp_path / "good", chain, deployment)
    syncing = None
    try:
        paths, results = [], []
        for name in ("one", "two"):
            path = tmp_path / name
            path.write_bytes(os.urandom(5 * SEGMENT + 7))
            results.append(upload(path, [bad, good], chain, deployment, new_account, replicas=2))
            corrupt_every_segment(bad, results[-1].tx_seq)
            paths.append(path)
        # the byzantine peer is listed first, so it is asked first while scores are even
        syncing = start_node(tmp_path / "new", chain, deployment, peers=(bad.url, good.url), sync={"workers": 1})
        assert wait_until(lambda: all(rpc(syncing.url, "zgs_checkFileFinalized", r.tx_seq) for r in results), 90)
        info = syncing.admin("admin_getSyncInfo")["fileSync"]
        assert info["corruptRejected"] == 1, "one corrupt answer; the peer was avoided afterwards"
        peers = {p["url"]: p for p in info["peers"]}
        assert peers[bad.url]["banned"] and peers[bad.url]["score"] < 0 < peers[good.url]["score"]
        for path, result in zip(paths, results, strict=True):  # nothing corrupted stored or served
            assert download_from(syncing, result, tmp_path / f"{path.name}.out") == path.read_bytes()
            for index in syncing.node.store.segment_indexes(result.tx_seq):
                stored = syncing.node.store.segment(result.tx_seq, index)
                assert stored is not None
                assert stored[: min(SEGMENT, len(path.read_bytes()) - index * SEGMENT)] == \
                    path.read_bytes()[index * SEGMENT : (index + 1) * SEGMENT]
    finally:
        for node in (syncing, bad, good):
            if node is not None:
                node.stop()


def test_peer_scores_rank_corrupt_peers_last_until_the_ban_expires() -> None:
    now = [0.0]
    scores = PeerScores(clock=lambda: now[0])
    scores.good("b")
    scores.corrupt("a")
    scores.unreachable("c")
    assert scores.rank(["a", "b", "c"]) == ["b", "c", "a"]
    now[0] = BAN_S + 1
    assert not scores.banned("a") and scores.rank(["a", "b"]) == ["b", "a"], "still scored down"


def test_restart_repair_refetches_missing_and_corrupted_segments(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    peer = start_node(tmp_path / "peer", chain, deployment)
    node = start_node(tmp_path / "node", chain, deployment)
    try:
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(4 * SEGMENT + 3))
        result = upload(path, [peer, node], chain, deployment, new_account, replicas=2)
        node.stop()
        db = sqlite3.connect(node.node.store.path)  # lose segment 1, corrupt segment 2
        db.execute("DELETE FROM segments WHERE seq = ? AND idx = 1", (result.tx_seq,))
        db.execute("UPDATE segments SET data = zeroblob(?) WHERE seq = ? AND idx = 2", (SEGMENT, result.tx_seq))
        db.commit()
        db.close()
        node = start_node(tmp_path / "node", chain, deployment, peers=(peer.url,))
        assert wait_until(node.node.peer_sync.scanned.is_set, 60)
        assert node.node.repair.repaired == {"corrupt": 1, "reopened": 1}
        assert wait_until(lambda: rpc(node.url, "zgs_checkFileFinalized", result.tx_seq) is True, 90)
        assert download_from(node, result, tmp_path / "out.bin") == path.read_bytes()
    finally:
        node.stop()
        peer.stop()


def test_shard_change_keeps_old_data_until_resynced_then_prunes_it(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    peer = start_node(tmp_path / "peer", chain, deployment)
    node = start_node(tmp_path / "node", chain, deployment, shard=ShardConfig(0, 2), peers=(peer.url,))
    try:
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(6 * SEGMENT))
        result = upload(path, [peer], chain, deployment, new_account)
        assert wait_until(lambda: rpc(node.url, "zgs_checkFileFinalized", result.tx_seq) is True, 90)
        old = node.node.store.segment_indexes(result.tx_seq)
        assert len(old) == 3
        node.stop()
        node = start_node(tmp_path / "node", chain, deployment, shard=ShardConfig(1, 2), peers=(peer.url,),
                          sync={"prune_grace_s": 1.0, "prune_interval_s": 0.2})
        assert set(old) <= set(node.node.store.segment_indexes(result.tx_seq)), "old shard kept at the change"
        assert wait_until(lambda: rpc(node.url, "zgs_checkFileFinalized", result.tx_seq) is True, 90), "re-synced"
        record = node.node.store.tx(result.tx_seq)
        assert record is not None
        mine = list(node.node.shard_segments(record.entry))
        assert wait_until(lambda: node.node.store.segment_indexes(result.tx_seq) == mine, 60), "old shard pruned"
        # the pass that deleted the segments clears the marker once it has seen every file
        assert wait_until(lambda: node.node.shard_changed_at() is None, 10), "shard change marked done"
        with StorageClient([node.url, peer.url]) as client:
            client.download(result.root, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == path.read_bytes()
    finally:
        node.stop()
        peer.stop()


def test_a_stuck_file_is_reported_in_status_and_retried_until_it_syncs(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    peer = start_node(tmp_path / "peer", chain, deployment, sync={"enabled": False})
    node = start_node(tmp_path / "node", chain, deployment, peers=(peer.url,), sync={"stuck_timeout_s": 1.0})
    try:
        data = os.urandom(2 * SEGMENT)
        tree = FileTree.from_bytes(data)
        entry = FlowContract(chain, deployment.address("Flow")).submit(new_account, [tree.submission()]).entries[0]
        assert wait_until(lambda: str(node.admin("admin_getSyncStatus", entry.seq)).startswith("Stuck"), 60)
        info = node.admin("admin_getSyncInfo")["fileSync"]
        assert entry.seq in info["stuck"] and "no known peer has file" in info["files"][str(entry.seq)]["lastError"]
        path = tmp_path / "late.bin"
        path.write_bytes(data)
        upload(path, [peer], chain, deployment, new_account)  # the data shows up on a peer at last
        assert wait_until(lambda: rpc(node.url, "zgs_checkFileFinalized", entry.seq) is True, 90), "retried"
        assert entry.seq not in node.admin("admin_getSyncInfo")["fileSync"]["stuck"]
    finally:
        node.stop()
        peer.stop()
