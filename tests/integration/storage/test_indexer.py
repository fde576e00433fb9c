"""The storage indexer and REST gateway: discovery, skipping bad nodes, locations, verified
downloads, and clear errors for bad input."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from tests.integration.storage.indexer_fixtures import RunningIndexer, start_indexer
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.netutil import wait_until
from zgos.storage.client import CorruptData, StorageClient
from zgos.storage.indexer.client import IndexerClient, IndexerError
from zgos.storage.indexer.server import IndexerLimits


def rpc(url: str, method: str, *params: object) -> dict:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()


@pytest.fixture
def nodes(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[list[RunningNode]]:
    running = [start_node(tmp_path / f"node{i}", chain, deployment) for i in range(2)]
    yield running
    for node in running:
        node.stop()


@pytest.fixture
def indexer(tmp_path: Path, chain: Chain, deployment: Deployment, nodes: list[RunningNode]) -> Iterator[RunningIndexer]:
    running = start_indexer(tmp_path / "indexer", chain, deployment, peers=tuple(n.url for n in nodes), registry=False)
    yield running
    running.stop()


def test_indexer_skips_bad_registry_entries_with_a_logged_reason(
    tmp_path: Path, chain: Chain, deployment: Deployment, nodes: list[RunningNode], caplog: pytest.LogCaptureFixture,
    refused_url: str,
) -> None:
    registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
    good, bad_url, unreachable, liar = (_funded(chain) for _ in range(4))
    registry.announce(good, NodeKind.STORAGE, nodes[0].url)
    registry.announce(bad_url, NodeKind.STORAGE, "ftp://127.0.0.1/not-http")
    dead = refused_url
    registry.announce(unreachable, NodeKind.STORAGE, dead)
    registry.announce(liar, NodeKind.STORAGE, nodes[1].url, shard_id=1, num_shard=2)  # it serves 0/1
    caplog.set_level(logging.WARNING)
    running = start_indexer(tmp_path / "indexer", chain, deployment)
    try:
        status = httpx.get(running.url + "/node/status").json()
        usable = {n["url"] for n in status["nodes"]}
        skipped = {s["url"]: s["reason"] for s in status["skipped"]}
        assert nodes[0].url in usable
        assert "not http or https" in skipped["ftp://127.0.0.1/not-http"]
        assert "unreachable" in skipped[dead]
        assert "announced shard 1/2 on chain but serves shard 0/1" in skipped[nodes[1].url]
        assert nodes[1].url not in usable
        logged = caplog.text
        assert dead in logged and "but serves shard 0/1" in logged and "not http or https" in logged
    finally:
        running.stop()
        for operator in (good, bad_url, unreachable, liar):
            registry.remove(operator, NodeKind.STORAGE)


def _funded(chain: Chain) -> LocalAccount:
    from eth_account import Account

    from zgos.chain.accounts import devnet_role

    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


def test_indexer_locates_files_and_the_gateway_streams_verified_downloads(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
    nodes: list[RunningNode], indexer: RunningIndexer,
) -> None:
    sharded = rpc(indexer.url, "indexer_getShardedNodes")["result"]
    assert {n["url"] for n in sharded["trusted"]} == {n.url for n in nodes}
    assert all(n["config"] == {"shardId": 0, "numShard": 1} for n in sharded["trusted"])
    with IndexerClient(indexer.url) as index:
        targets = index.upload_nodes(replicas=2)
    assert sorted(targets) == sorted(n.url for n in nodes)
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(2 * 256 * 1024 + 777))
    with StorageClient(targets[:1], chain, deployment.address("Flow"), new_account) as client:
        result = client.upload(path)
    root = "0x" + result.root.hex()
    locations = rpc(indexer.url, "indexer_getFileLocations", root)["result"]
    assert [n["url"] for n in locations] == [targets[0]]
    info = httpx.get(f"{indexer.url}/file/info/{root}").json()
    assert info["finalized"] and info["tx"]["size"] == path.stat().st_size and info["tx"]["seq"] == result.tx_seq
    response = httpx.get(f"{indexer.url}/file", params={"root": root, "name": "data.bin"})
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["X-Zg-Root"] == root
    assert "data.bin" in response.headers["Content-Disposition"]
    with httpx.stream("GET", f"{indexer.url}/file", params={"root": root}) as leaving:
        next(leaving.iter_raw(1024))  # a client that leaves after its first bytes
    with httpx.Client(timeout=60) as http:  # one kept-alive connection: each answer ends where it should
        assert [http.get(f"{indexer.url}/file", params={"root": root}).content for _ in range(2)] == [path.read_bytes()] * 2


def test_gateway_and_rpc_reject_bad_input_with_a_message(indexer: RunningIndexer) -> None:
    unknown = "0x" + "ab" * 32
    cases = [
        ("/file", 400, "exactly one root"),
        ("/file?root=0x1234", 400, "64 hex digits"),
        ("/file?root=zz", 400, "64 hex digits"),
        (f"/file?root={unknown}", 404, "no storage node"),
        ("/file/info/not-a-root", 400, "64 hex digits"),
        (f"/file/info/{unknown}", 404, "no storage node"),
        ("/nowhere", 404, "no such endpoint"),
    ]
    for path, status, message in cases:
        response = httpx.get(indexer.url + path)
        assert response.status_code == status, path
        assert message in response.json()["error"], path
    assert httpx.delete(indexer.url + "/file").status_code == 405
    assert httpx.post(indexer.url, content=b"{not json", headers={"content-type": "application/json"}).json()["error"]["code"] == -32700
    assert rpc(indexer.url, "indexer_nope")["error"]["code"] == -32601
    bad_root = rpc(indexer.url, "indexer_getFileLocations", "0x12")
    assert bad_root["error"]["code"] == -32602 and "64 hex digits" in bad_root["error"]["message"]
    assert rpc(indexer.url, "indexer_getFileLocations")["error"]["code"] == -32602
    assert rpc(indexer.url, "indexer_getFileLocations", unknown)["result"] == []
    too_many = rpc(indexer.url, "indexer_selectNodes", 5)
    assert too_many["error"]["code"] == -32000 and "do not cover every shard 5 time(s)" in too_many["error"]["message"]
    assert rpc(indexer.url, "indexer_selectNodes", "two")["error"]["code"] == -32602
    with IndexerClient(indexer.url) as index, pytest.raises(IndexerError, match="cover every shard"):
        index.upload_nodes(replicas=3)


def test_gateway_streams_only_proven_bytes_and_stops_short_at_a_corrupt_segment(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount,
    nodes: list[RunningNode], indexer: RunningIndexer,
) -> None:
    segment = 256 * 1024
    data = os.urandom(6 * segment + 99)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with StorageClient([nodes[0].url], chain, deployment.address("Flow"), new_account) as client:
        result = client.upload(path)
        _, chunks = client.stream(result.root)
        assert b"".join(chunks) == data, "streamed in order, whole"
    nodes[0].node.store._db().execute(
        "UPDATE segments SET data = ? WHERE seq = ? AND idx = 3", (os.urandom(segment), result.tx_seq))
    with StorageClient([nodes[0].url]) as client:
        _, chunks = client.stream(result.root)
        received = []
        with pytest.raises(CorruptData, match="corrupt segment 3"):
            received.extend(chunks)
        assert b"".join(received) == data[: 3 * segment], "only the proven prefix was yielded"
    received_bytes = b""
    with pytest.raises(httpx.RemoteProtocolError), \
            httpx.stream("GET", f"{indexer.url}/file", params={"root": "0x" + result.root.hex()}, timeout=60) as response:
        assert response.status_code == 200 and response.headers["Content-Length"] == str(len(data))
        for piece in response.iter_bytes():
            received_bytes += piece
    assert received_bytes == data[: len(received_bytes)] and len(received_bytes) <= 3 * segment, \
        "the gateway stopped short of Content-Length instead of sending unproven bytes"
    nodes[0].node.store._db().execute(
        "UPDATE segments SET data = ? WHERE seq = ? AND idx = 0", (os.urandom(segment), result.tx_seq))
    response = httpx.get(f"{indexer.url}/file", params={"root": "0x" + result.root.hex()}, timeout=60)
    assert response.status_code == 502 and "corrupt segment 0" in response.json()["error"], \
        "a file whose first segment cannot be proven is an error status, not a truncated 200"


def test_readers_that_stall_hold_up_only_other_downloads_never_the_rpc(
    tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount, nodes: list[RunningNode],
) -> None:
    """Each download sends from a thread of its own, one of ``file_senders``: a client that asks
    for a file and then reads nothing holds one until it leaves (or stalls past the limit). With
    every sender held, the next download is refused at once with a 503 that says why, while the
    JSON-RPC keeps answering; once the client leaves, downloads go through again. One address
    holds at most ``file_downloads_per_client`` of them (429 beyond)."""
    data = os.urandom(40 * 1024 * 1024 + 5)  # far more than the sockets' buffers hold
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    with StorageClient([nodes[0].url], chain, deployment.address("Flow"), new_account) as client:
        root = "0x" + client.upload(path).root.hex()
    gateway = start_indexer(tmp_path / "gateway", chain, deployment, peers=(nodes[0].url,), registry=False,
                            limits=IndexerLimits(file_senders=1, file_downloads_per_client=5))
    try:
        stalled = stalled_download(gateway.url, root)
        assert wait_until(lambda: httpx.get(f"{gateway.url}/file", params={"root": root}, timeout=30).status_code == 503, 30)
        refused = httpx.get(f"{gateway.url}/file", params={"root": root}, timeout=30)
        assert "sending as many files as it may at once (1)" in refused.json()["error"], refused.text
        assert rpc(gateway.url, "indexer_getFileLocations", root)["result"][0]["url"] == nodes[0].url
        stalled.close()
        assert wait_until(lambda: httpx.get(f"{gateway.url}/file", params={"root": root}, timeout=60).content == data, 60)
    finally:
        gateway.stop()
    gateway = start_indexer(tmp_path / "gateway2", chain, deployment, peers=(nodes[0].url,), registry=False,
                            limits=IndexerLimits(file_senders=8, file_downloads_per_client=2))
    try:  # one address may not take every sender: its third download at once is refused, others' are not
        held = [stalled_download(gateway.url, root) for _ in range(2)]
        third = httpx.get(f"{gateway.url}/file", params={"root": root}, timeout=30)
        assert third.status_code == 429 and "at most 2 downloads at once" in third.json()["error"], third.text
        for connection in held:
            connection.close()
        assert wait_until(lambda: httpx.get(f"{gateway.url}/file", params={"root": root}, timeout=60).content == data, 60)
    finally:
        gateway.stop()


def stalled_download(url: str, root: str) -> socket.socket:
    """A connection that asked ``url`` for file ``root``, saw its answer start, and reads no more."""
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    connection.sendall(f"GET /file?root={root} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert b"200 OK" in connection.recv(4096)
    return connection
