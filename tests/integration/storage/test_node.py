"""A storage node end to end: upload, finalize, download, and every rejection named."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import httpx
import pytest

from tests.integration.storage.conftest import RunningNode
from tests.integration.storage.httpproxy import StorageNodeProxy
from zgos.runtime.addresses import OPEN_POLICY
from zgos.runtime.logs import CONNECTION_LOGGER
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import CorruptData, StorageClient
from zgos.storage.hasher import build_file_tree
from zgos.storage.nodeclient import NodeConnection, wait_for
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.frames import encode_frame_header, encode_proof
from zgos.storage.spec.merkle import Proof
from zgos.storage.spec.segment import ALREADY_FINALIZED_ERROR_CODE, SegmentWithProof


def rpc(url: str, method: str, *params: object) -> dict:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()


def write(tmp_path: Path, size: int, name: str = "file.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_upload_finalizes_and_download_returns_the_same_bytes(tmp_path: Path, client: StorageClient, storage_node: RunningNode) -> None:
    path = write(tmp_path, 3 * 256 * 1024 + 1000)
    result = client.upload(path)
    assert result.root == FileTree.from_bytes(path.read_bytes()).root
    assert rpc(storage_node.url, "zgs_checkFileFinalized", result.tx_seq)["result"] is True
    info = rpc(storage_node.url, "zgs_getFileInfo", "0x" + result.root.hex(), True)["result"]
    assert info["finalized"] and info["tx"]["size"] == path.stat().st_size and info["uploadedSegNum"] == 4
    out = tmp_path / "out.bin"
    client.download(result.root, out)
    assert out.read_bytes() == path.read_bytes()
    again = client.upload(path)
    assert again.tx_hash is None and again.segments_sent == 0, "a file already on chain is not resubmitted"


def test_json_rpc_download_with_proof_verifies(tmp_path: Path, client: StorageClient, storage_node: RunningNode) -> None:
    path = write(tmp_path, 300_000)
    result = client.upload(path)
    answer = rpc(storage_node.url, "zgs_downloadSegmentWithProofByTxSeq", result.tx_seq, 1)["result"]
    segment = SegmentWithProof.from_json(answer)
    assert segment.data[: 300_000 - 262_144] == path.read_bytes()[262_144:]
    chunks = rpc(storage_node.url, "zgs_downloadSegment", "0x" + result.root.hex(), 0, 2)["result"]
    assert base64.b64decode(chunks) == path.read_bytes()[:512]
    flow_root, flow_length = rpc(storage_node.url, "zgs_getFlowContext")["result"]
    assert flow_length > 1 and flow_root.startswith("0x")


def _segment_json(tree: FileTree, data: bytes, index: int) -> dict:
    chunk = data[index * 262_144 : (index + 1) * 262_144]
    chunk += bytes(-len(chunk) % 256)
    return SegmentWithProof(tree.root, chunk, index, tree.proof(index), tree.size).to_json()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: {**s, "proof": {**s["proof"], "lemma": [s["proof"]["lemma"][0], "0x" + "11" * 32, *s["proof"]["lemma"][2:]]}}, "invalid proof"),
        (lambda s: {**s, "data": base64.b64encode(base64.b64decode(s["data"])[:-256]).decode()}, "must be 262144 bytes"),
        (lambda s: {**s, "index": 1}, "invalid proof"),
        (lambda s: {**s, "index": 9}, "beyond the file"),
        (lambda s: {**s, "data": base64.b64encode(base64.b64decode(s["data"]) + bytes(256)).decode()}, "must be 262144 bytes"),
        (lambda s: {**s, "root": "0x" + "22" * 32, "fileSize": 50 * 1024 * 1024}, "too large to cache"),
        (lambda s: {**s, "fileSize": 3 * 262_144 + 5}, "does not match the file's size"),
    ],
    ids=["wrong_proof", "wrong_length", "wrong_index", "index_beyond_file", "oversize_body", "unknown_root", "wrong_file_size"],
)
def test_bad_segment_is_rejected_with_a_named_reason_and_state_unchanged(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode, mutate, reason: str
) -> None:
    data = os.urandom(3 * 262_144)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    tree = FileTree.from_bytes(data)
    submitted = client.flow.submit(client.account, [tree.submission()])  # type: ignore[union-attr]
    seq = submitted.entries[0].seq
    wait_for(lambda: rpc(storage_node.url, "zgs_getFileInfoByTxSeq", seq)["result"] is not None, "sync")
    good = _segment_json(tree, data, 0)
    before = storage_node.node.store.segment_indexes(seq)
    answer = rpc(storage_node.url, "zgs_uploadSegment", mutate(good))
    assert "error" in answer and reason in answer["error"]["message"], answer
    assert storage_node.node.store.segment_indexes(seq) == before
    assert rpc(storage_node.url, "zgs_getFileInfoByTxSeq", seq)["result"]["uploadedSegNum"] == len(before)
    assert rpc(storage_node.url, "zgs_uploadSegment", good) == {"jsonrpc": "2.0", "id": 1, "result": None}


def test_a_segment_of_a_finalized_file_is_refused_with_a_typed_code_the_client_accepts(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode,
) -> None:
    data = os.urandom(2 * 262_144 + 99)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    result = client.upload(path)
    tree = FileTree.from_bytes(data)
    one = rpc(storage_node.url, "zgs_uploadSegmentsByTxSeq", [_segment_json(tree, data, 1)], result.tx_seq)
    assert one["error"] == {"code": ALREADY_FINALIZED_ERROR_CODE,
                            "message": f"file {result.tx_seq} is already uploaded and finalized"}
    two = rpc(storage_node.url, "zgs_uploadSegmentsByTxSeq",
              [_segment_json(tree, data, 0), _segment_json(tree, data, 1)], result.tx_seq)
    assert two["error"]["code"] == ALREADY_FINALIZED_ERROR_CODE
    assert two["error"]["message"] == f"segment 0: file {result.tx_seq} is already uploaded and finalized"
    segment = SegmentWithProof.from_json(_segment_json(tree, data, 2))
    with OutboundClient(OPEN_POLICY) as http:
        for fast in (False, True):  # JSON-RPC (the typed code) and the fast path (the file's state)
            NodeConnection(storage_node.url, http, fast=fast).put_segment(result.tx_seq, segment)


def test_segment_for_an_unknown_large_root_is_rejected(storage_node: RunningNode) -> None:
    segment = SegmentWithProof(b"\x33" * 32, bytes(256), 0, Proof((b"\x01" * 32,), ()), 1 << 30)
    answer = rpc(storage_node.url, "zgs_uploadSegmentByTxSeq", segment.to_json(), 99_999)
    assert "no file with tx seq 99999" in answer["error"]["message"]


def test_small_upload_before_the_transaction_is_cached_then_stored(tmp_path: Path, client: StorageClient, storage_node: RunningNode) -> None:
    data = os.urandom(5000)
    tree = FileTree.from_bytes(data)
    answer = rpc(storage_node.url, "zgs_uploadSegment", _segment_json(tree, data, 0))
    assert answer["result"] is None
    submitted = client.flow.submit(client.account, [tree.submission()])  # type: ignore[union-attr]
    seq = submitted.entries[0].seq
    wait_for(lambda: rpc(storage_node.url, "zgs_checkFileFinalized", seq)["result"] is True, "finalize from cache")


def test_download_from_a_corrupted_node_fails_verification(tmp_path: Path, client: StorageClient, storage_node: RunningNode) -> None:
    path = write(tmp_path, 2 * 262_144 + 77)
    result = client.upload(path)
    store = storage_node.node.store
    db = store._db()
    db.execute("UPDATE segments SET data = ? WHERE seq = ? AND idx = 1", (os.urandom(262_144), result.tx_seq))
    out = tmp_path / "out.bin"
    with pytest.raises(CorruptData, match="corrupt segment 1"):
        client.download(result.root, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.bin.*")), "no half-written temporary file is left"


def test_segments_stream_as_frames_and_a_segment_not_held_is_an_empty_frame(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode, caplog: pytest.LogCaptureFixture,
) -> None:
    data = write(tmp_path, 3 * 262_144 + 9).read_bytes()
    result = client.upload(tmp_path / "file.bin")
    connection = client.nodes[0]
    frames = list(connection.get_segments(result.tx_seq, range(0, 3, 2)))
    assert [frame.index for frame in frames] == [0, 2]
    assert [frame.data for frame in frames] == [data[:262_144], data[2 * 262_144 : 3 * 262_144]]
    tree = build_file_tree(tmp_path / "file.bin")
    assert frames[1].proof == tree.proof(2), "each frame carries the segment's proof"
    with caplog.at_level(logging.INFO, CONNECTION_LOGGER):
        beyond = list(connection.get_segments(result.tx_seq, range(3, 6)))
    assert beyond[0].data == data[3 * 262_144 :].ljust(256, b"\0")
    assert [(f.data, f.proof) for f in beyond[1:]] == [(None, None), (None, None)]
    dialled = [r for r in caplog.records if r.name == CONNECTION_LOGGER]
    assert not dialled, "a stream read to its end leaves its connection for the next one"
    url = f"{storage_node.url}/zgos/v1/segments/{result.tx_seq}"
    for params in ({}, {"first": "x", "count": "1"}, {"first": 0, "count": 0}, {"first": 0, "count": 65},
                   {"first": 0, "count": 1, "step": 0}, {"first": 10**30, "count": 1}):
        response = httpx.get(url, params=params)
        assert response.status_code == 400 and response.json()["error"], params
    assert httpx.get(f"{storage_node.url}/zgos/v1/segments/424242", params={"first": 0, "count": 1}).status_code == 404


def test_a_run_of_segments_uploads_in_one_request_and_a_bad_one_is_refused_by_index(
    tmp_path: Path, chain, deployment, new_account, storage_node: RunningNode
) -> None:
    path = write(tmp_path, 3 * 262_144 + 11)
    tree = build_file_tree(path)
    data = path.read_bytes()
    segments = [SegmentWithProof(tree.root, data[i * 262_144 : (i + 1) * 262_144].ljust(256 * -(-len(data[i * 262_144 : (i + 1) * 262_144]) // 256), b"\0"),
                                 i, tree.proof(i), tree.size) for i in range(4)]
    with StorageClient([storage_node.url], chain, deployment.address("Flow"), new_account) as client:
        submitted = client.uploads.submit(tree)
        connection = client.nodes[0]
        connection.wait_synced(submitted.seq)
        url = f"{storage_node.url}/zgos/v1/segments/{submitted.seq}"
        headers = {"X-Zg-Root": "0x" + tree.root.hex(), "X-Zg-File-Size": str(tree.size),
                   "Content-Type": "application/octet-stream"}
        forged = SegmentWithProof(tree.root, os.urandom(262_144), 1, tree.proof(1), tree.size)
        body = b"".join(encode_frame_header(s.index, encode_proof(s.proof), len(s.data)) + s.data for s in (segments[0], forged))
        refused = httpx.put(url, content=body, headers=headers)
        assert refused.status_code == 400 and refused.json()["index"] == 1, refused.text
        assert connection.held_segments(submitted.seq) == ({0}, False), "the good segment before it is kept"
        for cut in (body[:5], body[: len(body) // 2 + 100]):  # mid-header, mid-proof
            assert httpx.put(url, content=cut, headers=headers).status_code == 400
        assert httpx.put(url, content=body, headers={**headers, "X-Zg-File-Size": "x"}).status_code == 400
        connection.put_segments(submitted.seq, segments)
        connection.wait_finalized(submitted.seq)
        client.download(tree.root, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_download_falls_back_to_a_good_node_when_one_is_corrupted(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode, chain, deployment, new_account
) -> None:
    from tests.integration.storage.conftest import start_node

    second = start_node(tmp_path / "second", chain, deployment)
    try:
        path = write(tmp_path, 2 * 262_144 + 5)
        with StorageClient([storage_node.url, second.url], chain, deployment.address("Flow"), new_account) as both:
            result = both.upload(path, replicas=2)
            storage_node.node.store._db().execute(
                "UPDATE segments SET data = ? WHERE seq = ? AND idx = 0", (os.urandom(262_144), result.tx_seq))
            out = tmp_path / "out.bin"
            both.download(result.root, out)
            assert out.read_bytes() == path.read_bytes()
    finally:
        second.stop()


def test_sector_proof_proves_a_sector_under_the_flow_root(tmp_path: Path, client: StorageClient, storage_node: RunningNode) -> None:
    from zgos.core.hashing import keccak256
    from zgos.storage.spec.merkle import compute_proof_root

    path = write(tmp_path, 262_144 + 3000)
    result = client.upload(path)
    entry = storage_node.node.store.tx(result.tx_seq).entry  # type: ignore[union-attr]
    flow_root, _ = rpc(storage_node.url, "zgs_getFlowContext")["result"]
    for offset in (0, 1025, 1035):
        sector = entry.start_entry + offset
        proof = Proof.from_json(rpc(storage_node.url, "zgs_getSectorProof", sector)["result"])
        data = path.read_bytes()[offset * 256 : (offset + 1) * 256]
        assert proof.leaf == keccak256(data + bytes(256 - len(data)))
        assert "0x" + compute_proof_root(proof).hex() == flow_root == "0x" + proof.root.hex()
    assert client.flow is not None
    assert "0x" + client.flow.chain.call(client.flow.contract.functions.computeFlowRoot()).hex() == flow_root


def test_client_works_over_0g_json_rpc_only(
    tmp_path: Path, storage_node: RunningNode, chain, deployment, new_account
) -> None:
    path = write(tmp_path, 2 * 262_144 + 999)
    with StorageClient([storage_node.url], chain, deployment.address("Flow"), new_account, fast_path=False) as rpc_only:
        result = rpc_only.upload(path)
        out = tmp_path / "out.bin"
        rpc_only.download(result.root, out)
    assert out.read_bytes() == path.read_bytes()


def test_a_sector_proof_costs_one_segment_whatever_the_file_size(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Work per proof is measured (bytes read from the store and hashed), not timed: it stays at
    most one segment for a 2-segment and a 49-segment file alike, and every proof is the one a
    full re-hash of the file would give."""
    from zgos.core.hashing import keccak256
    from zgos.storage.node import node as node_module
    from zgos.storage.spec import flow as flow_rules
    from zgos.storage.spec.merkle import (
        BYTES_PER_SEGMENT,
        ZERO_SECTOR_HASH,
        compute_leaf_hashes,
        compute_proof_root,
        compute_segment_root_from_leaves,
    )

    node = storage_node.node
    files = {}
    for name, size in (("small.bin", 2 * BYTES_PER_SEGMENT + 1000), ("large.bin", 48 * BYTES_PER_SEGMENT + 5000)):
        path = write(tmp_path, size, name)
        files[client.upload(path).tx_seq] = path.read_bytes()
    work = {"read": 0, "hashed": 0}
    store_segment, leaf_hashes = node.store.segment, node_module.compute_leaf_hashes

    def counted_segment(seq: int, index: int) -> bytes | None:
        data = store_segment(seq, index)
        work["read"] += len(data or b"")
        return data

    def counted_leaves(data: bytes) -> list[bytes]:
        work["hashed"] += len(data)
        return leaf_hashes(data)

    monkeypatch.setattr(node.store, "segment", counted_segment)
    monkeypatch.setattr(node_module, "compute_leaf_hashes", counted_leaves)

    def full_rehash(item: flow_rules.FlowItem, position: int, height: int) -> bytes:  # the old way
        start = node.store.tx(item.seq).entry.start_entry  # type: ignore[arg-type, union-attr]
        first = position - start
        chunk = files[item.seq][first * 256 : (first + (1 << height)) * 256]  # type: ignore[index]
        leaves = compute_leaf_hashes(chunk) if chunk else []
        return compute_segment_root_from_leaves(leaves + [ZERO_SECTOR_HASH] * ((1 << height) - len(leaves)))

    flow_root = rpc(storage_node.url, "zgs_getFlowContext")["result"][0]
    items = flow_rules.compute_flow_items([(e.seq, e.submission) for e in node.store.entries()])
    most = {}
    for seq, data in files.items():
        start = node.store.tx(seq).entry.start_entry  # type: ignore[union-attr]
        sectors = -(-len(data) // 256)
        padded = flow_rules.compute_padded_sectors(sectors)
        most[seq] = {"read": 0, "hashed": 0}
        for offset in (0, 1, 1023, 1024, sectors // 2, sectors - 1, sectors, padded - 1):
            work.update(read=0, hashed=0)
            answer = rpc(storage_node.url, "zgs_getSectorProof", start + offset)
            assert "result" in answer, answer
            proof = Proof.from_json(answer["result"])
            sector = data[offset * 256 : (offset + 1) * 256]
            assert proof.leaf == (keccak256(sector + bytes(256 - len(sector))) if sector else ZERO_SECTOR_HASH)
            assert "0x" + compute_proof_root(proof).hex() == flow_root == "0x" + proof.root.hex()
            assert proof == flow_rules.compute_flow_proof(items, start + offset, full_rehash)
            for key in most[seq]:
                most[seq][key] = max(most[seq][key], work[key])
    assert all(cost["read"] <= BYTES_PER_SEGMENT and cost["hashed"] <= BYTES_PER_SEGMENT for cost in most.values()), most
    small, large = most.values()
    assert large == small, "the same work for a file 20 times larger"


def test_expensive_calls_over_a_clients_rate_limit_get_429(tmp_path: Path, chain, deployment) -> None:
    from tests.integration.storage.conftest import start_node
    from zgos.runtime.ratelimit import RateLimit
    from zgos.storage.node.server import NodeLimits

    node = start_node(tmp_path / "node", chain, deployment, limits=NodeLimits(rate=RateLimit(per_s=0.01, burst=3)))
    try:
        proofs = [rpc(node.url, "zgs_getSectorProof", 0) for _ in range(3)]
        assert all("result" in p for p in proofs), "the burst is served"
        limited = httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getSectorProof", "params": [0]})
        assert limited.status_code == 429 and "rate limit" in limited.json()["error"] and limited.headers["retry-after"]
        assert httpx.get(f"{node.url}/zgos/v1/segment/0/0").status_code == 429, "the fast path draws on the same bucket"
        assert "result" in rpc(node.url, "zgs_getStatus"), "cheap calls are not limited"
    finally:
        node.stop()


def test_holdings_answers_shard_file_and_held_segments_in_one_request_as_the_json_rpc_does(
    tmp_path: Path, client: StorageClient, storage_node: RunningNode
) -> None:
    """``GET /zgos/v1/holdings``: what a health check asks each node, in one request; the
    client reads the same holdings from a node it may only ask over 0G's JSON-RPC."""
    result = client.upload(write(tmp_path, 2 * 262_144 + 5))
    unknown = bytes(range(32))
    answer = httpx.get(f"{storage_node.url}/zgos/v1/holdings",
                       params=[("root", "0x" + result.root.hex()), ("root", "0x" + unknown.hex())])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["shard"] == rpc(storage_node.url, "zgs_getShardConfig")["result"]
    assert body["files"][0]["info"] == rpc(storage_node.url, "zgs_getFileInfo", "0x" + result.root.hex(), True)["result"]
    assert body["files"][0]["segments"] == [0, 1, 2] and body["files"][1] is None
    with OutboundClient(OPEN_POLICY, deadline_s=10) as http:
        fast, json_rpc_only = NodeConnection(storage_node.url, http), NodeConnection(storage_node.url, http, fast=False)
        shard, holdings = fast.holdings([result.root, unknown])
        assert (shard, holdings) == json_rpc_only.holdings([result.root, unknown])
        held = holdings[0]
        assert held is not None and held.segments == {0, 1, 2} and held.location.seq == result.tx_seq
    older = StorageNodeProxy(storage_node.url, missing=("/zgos/v1/holdings",))  # a node from before the endpoint
    try:
        with OutboundClient(OPEN_POLICY, deadline_s=10) as http:
            older_shard, older_holdings = NodeConnection(older.url, http).holdings([result.root, unknown])
        assert older_shard == shard and [(h.location.info, h.segments) if h else None for h in older_holdings] \
            == [(h.location.info, h.segments) if h else None for h in holdings]
        assert ("GET", f"/zgos/v1/holdings?root=0x{result.root.hex()}&root=0x{unknown.hex()}") in older.requests
    finally:
        older.stop()
    too_many = [("root", "0x" + bytes([i] * 32).hex()) for i in range(9)]
    for params in (too_many, [("root", "0x12")], [("root", "0x" + "zz" * 32)]):
        refused = httpx.get(f"{storage_node.url}/zgos/v1/holdings", params=params)
        assert refused.status_code == 400 and refused.json()["error"], params
