"""Sharded nodes (storage.md §4.5): a node stores only its shard's flow segments."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.netutil import wait_until
from zgos.storage.contracts import FlowContract
from zgos.storage.filetree import FileTree
from zgos.storage.segment import SegmentWithProof, validate_segment
from zgos.storage.shard import ShardConfig, compute_shard_segments

SEGMENT = 256 * 1024


def rpc(url: str, method: str, *params: object) -> dict:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()


def segment_json(tree: FileTree, data: bytes, index: int) -> dict:
    chunk = data[index * SEGMENT : (index + 1) * SEGMENT]
    chunk += bytes(-len(chunk) % 256)
    return SegmentWithProof(tree.root, chunk, index, tree.proof(index), tree.size).to_json()


@pytest.fixture
def half_node(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "half", chain, deployment, shard=ShardConfig(1, 2))
    yield running
    running.stop()


def test_sharded_node_stores_only_its_shard_and_rejects_the_rest(
    half_node: RunningNode, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    assert rpc(half_node.url, "zgs_getShardConfig")["result"] == {"shardId": 1, "numShard": 2}
    assert rpc(half_node.url, "admin_getSyncInfo")["result"]["shardConfig"] == {"shardId": 1, "numShard": 2}
    data = os.urandom(4 * SEGMENT + 5000)
    tree = FileTree.from_bytes(data)
    entry = FlowContract(chain, deployment.address("Flow")).submit(new_account, [tree.submission()]).entries[0]
    wait_until(lambda: rpc(half_node.url, "zgs_getFileInfoByTxSeq", entry.seq)["result"] is not None, 20)
    mine = list(compute_shard_segments(entry.start_entry, 5, ShardConfig(1, 2)))
    other = [i for i in range(5) if i not in mine]
    answer = rpc(half_node.url, "zgs_uploadSegmentsByTxSeq", [segment_json(tree, data, other[0])], entry.seq)
    assert answer["error"]["code"] == -32000
    assert "outside this node's shard 1/2" in answer["error"]["message"]
    for index in mine:
        assert "error" not in rpc(half_node.url, "zgs_uploadSegmentsByTxSeq", [segment_json(tree, data, index)], entry.seq)
    assert rpc(half_node.url, "zgs_checkFileFinalized", entry.seq)["result"] is True, "finalized with its shard only"
    info = rpc(half_node.url, "zgs_getFileInfoByTxSeq", entry.seq)["result"]
    assert info["uploadedSegNum"] == len(mine)
    served = SegmentWithProof.from_json(rpc(half_node.url, "zgs_downloadSegmentWithProofByTxSeq", entry.seq, mine[0])["result"])
    assert served == SegmentWithProof.from_json(segment_json(tree, data, mine[0]))
    validate_segment(served, tree.root, tree.size)
    assert rpc(half_node.url, "zgs_downloadSegmentWithProofByTxSeq", entry.seq, other[0])["result"] is None
