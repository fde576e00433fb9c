"""Sharded nodes (storage.md §4.5): a node stores only its shard's flow segments."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import wait_until
from zgos.runtime.service import DevnetContext, DevnetOptions
from zgos.storage.client import StorageClient, StorageError
from zgos.storage.contracts import FlowContract
from zgos.storage.devnet import storage_services
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.segment import SegmentWithProof, validate_segment
from zgos.storage.spec.shard import ShardConfig, compute_shard_segments

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
    assert half_node.admin("admin_getSyncInfo")["shardConfig"] == {"shardId": 1, "numShard": 2}
    data = os.urandom(4 * SEGMENT + 5000)
    tree = FileTree.from_bytes(data)
    entry = FlowContract(chain, deployment.address("Flow")).submit(new_account, [tree.submission()]).entries[0]
    wait_until(lambda: rpc(half_node.url, "zgs_getFileInfoByTxSeq", entry.seq)["result"] is not None, 90)
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


@pytest.fixture
def two_shards(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[list[RunningNode]]:
    nodes = [start_node(tmp_path / f"s{i}", chain, deployment, shard=ShardConfig(i, 2)) for i in range(2)]
    yield nodes
    for node in nodes:
        node.stop()


def test_client_splits_a_file_over_shards_and_downloads_it_back_verified(
    tmp_path: Path, two_shards: list[RunningNode], chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(5 * SEGMENT + 1234))
    with StorageClient([n.url for n in two_shards], chain, deployment.address("Flow"), new_account) as client:
        result = client.upload(path)
        assert result.segments_sent == 6, "each segment went to the one node of its shard"
        for node in two_shards:
            record = node.node.store.tx(result.tx_seq)
            assert record is not None and record.finalized
            assert node.node.store.segment_indexes(result.tx_seq) == list(node.node.shard_segments(record.entry))
        out = tmp_path / "out.bin"
        client.download(result.root, out)
        assert out.read_bytes() == path.read_bytes()
        with pytest.raises(StorageError, match="cannot hold 2 replica"):
            client.upload(path, replicas=2)
    with StorageClient([two_shards[0].url]) as half, pytest.raises(StorageError, match="no reachable node holds segment"):
        half.download(result.root, tmp_path / "half.bin")
    assert not (tmp_path / "half.bin").exists()


def test_devnet_gives_storage_node_i_shard_i_mod_shards(tmp_path: Path) -> None:
    options = DevnetOptions(chain_port=20000, storage_nodes=8, shards=4)
    ctx = DevnetContext(DataDir(tmp_path), options)
    services = storage_services(options)
    assert [s.name for s in services] == [f"storage-{i}" for i in range(8)]
    for i, service in enumerate(services):
        argv = service.argv(ctx)
        assert argv[argv.index("--shard") + 1] == f"{i % 4}/4"


@pytest.mark.parametrize(("nodes", "shards"), [("3", "3"), ("2", "4")])
def test_devnet_rejects_shards_that_are_not_a_power_of_two_or_exceed_the_nodes(tmp_path: Path, nodes: str, shards: str) -> None:
    result = zg(tmp_path / "devnet", "devnet", "up", "--storage-nodes", nodes, "--shards", shards)
    assert result.returncode == 1 and "must be a power of two and at most --storage-nodes" in result.stderr
    assert "Traceback" not in result.stderr
