"""A storage node and the indexer among strangers (issue 12): each scenario of the review as a
named test on a real node and a real indexer on 127.0.0.1, then the seeded fuzz harness
(``httpfuzz``) against both: no 5xx but 503, no traceback in any answer or log, no hang, and
both still serve the file they held before."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.adversarial.httpfuzz import FuzzProfile, assert_survives_fuzz, parse_statuses
from tests.adversarial.logwatch import LogRecords, service_logs
from tests.integration.storage.conftest import RunningNode, start_node
from tests.integration.storage.indexer_fixtures import RunningIndexer, start_indexer
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_RESPONSE_BYTES,
    PARSE_ERROR,
    RESPONSE_TOO_LARGE,
)
from zgos.storage.client import StorageClient, UploadResult
from zgos.storage.spec.frames import decode_frame_header
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT

FILE_BYTES = 4 * BYTES_PER_SEGMENT + 777


@dataclass
class Storage:
    node: RunningNode
    indexer: RunningIndexer
    upload: UploadResult
    data: bytes
    log: LogRecords
    http: httpx.Client

    @property
    def host(self) -> str:
        return self.node.url.removeprefix("http://")

    def rpc(self, method: str, *params: Any, token: bool = False) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.node.token}"} if token else {}
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer: dict[str, Any] = self.http.post(self.node.url, json=body, headers=headers).json()
        return answer

    def assert_healthy(self, tmp_path: Path) -> None:
        """Both services answer, and the file comes back whole through the node and the gateway."""
        assert httpx.get(self.node.url + "/health", timeout=30).json()["networkIdentity"]["chainId"] > 0
        assert httpx.get(self.indexer.url + "/node/status", timeout=30).status_code == 200
        with StorageClient([self.node.url]) as client:
            client.download(self.upload.root, tmp_path / "again.bin")
        assert (tmp_path / "again.bin").read_bytes() == self.data
        gateway = httpx.get(self.indexer.url + "/file", params={"root": "0x" + self.upload.root.hex()}, timeout=60)
        assert gateway.status_code == 200 and gateway.content == self.data


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[Storage]:
    with service_logs() as log:
        yield from _storage(tmp_path_factory, chain, deployment, log)


def _storage(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment,
             log: LogRecords) -> Iterator[Storage]:
    tmp = tmp_path_factory.mktemp("storage-edge")
    node = start_node(tmp / "node", chain, deployment)
    account = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**19)
    path = tmp / "file.bin"
    path.write_bytes(bytes(range(256)) * (FILE_BYTES // 256) + b"z" * (FILE_BYTES % 256))
    with StorageClient([node.url], chain, deployment.address("Flow"), account) as client:
        result = client.upload(path)
    indexer = start_indexer(tmp / "scratch", chain, deployment, peers=(node.url,), registry=False)
    try:
        with httpx.Client(timeout=60) as http:
            yield Storage(node, indexer, result, path.read_bytes(), log, http)
    finally:
        indexer.stop()
        node.stop()


def exchange(url: str, raw: bytes, timeout_s: float = 30) -> bytes:
    """Send raw bytes on one connection and read until the server closes it (the last request
    says ``Connection: close``; a half-close would make uvicorn drop the answers)."""
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(raw)
        while chunk := sock.recv(1 << 16):
            answer += chunk
    return answer


def post_raw(url: str, body: bytes, content_type: str = "application/json", **headers: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": content_type, **headers}, timeout=60)


# --- the review's scenarios ----------------------------------------------------------------


def deep_nesting_is_harmless(url: str) -> None:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # what py_ecc does at import: the edge must put it back
    try:
        for body in (b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            answer = post_raw(url, body)
            assert answer.status_code == 200 and answer.json()["error"]["code"] == PARSE_ERROR
            assert "deeper than 64" in answer.json()["error"]["message"]
        assert post_raw(url, b"[" * 100_000, "text/plain").status_code == 415
        assert sys.getrecursionlimit() == 1000, "the edge restored the recursion limit"
    finally:
        sys.setrecursionlimit(previous)


def test_a_deeply_nested_body_does_not_crash_the_storage_node(storage: Storage, tmp_path: Path) -> None:
    deep_nesting_is_harmless(storage.node.url)
    proof = httpx.put(f"{storage.node.url}/zgos/v1/segment/{storage.upload.tx_seq}/0", content=b"x" * 256,
                      headers={"content-type": "application/octet-stream", "x-zg-root": "0x" + "ab" * 32,
                               "x-zg-file-size": "256", "x-zg-proof": "[" * 5000}, timeout=30)
    assert proof.status_code == 400 and "deeper than 64" in proof.json()["error"]
    storage.assert_healthy(tmp_path)


def test_a_deeply_nested_body_does_not_crash_the_indexer(storage: Storage, tmp_path: Path) -> None:
    deep_nesting_is_harmless(storage.indexer.url)
    assert httpx.get(storage.indexer.url + "/file", params={"root": "[" * 5000}, timeout=30).status_code == 400
    storage.assert_healthy(tmp_path)


def test_no_keep_alive_desync_on_the_storage_node(storage: Storage) -> None:
    call = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "zgs_getShardConfig"}).encode()
    second = (f"POST / HTTP/1.1\r\nHost: {storage.host}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(call)}\r\nConnection: close\r\n\r\n").encode() + call
    # A GET carrying a body: the old server left "[]" unread and parsed "[]POST" as a request line.
    with_body = f"GET /health HTTP/1.1\r\nHost: {storage.host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
    answer = exchange(storage.node.url, with_body.encode() + second)
    assert parse_statuses(answer) == [200, 200], answer[:300]
    assert answer.rstrip().endswith(b'"result":{"shardId":0,"numShard":1}}'), "the next request was read as sent"
    # Refused before its body was read (wrong type, too large): the connection is closed, never re-parsed.
    for refused in (f"POST / HTTP/1.1\r\nHost: {storage.host}\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n\r\n",
                    f"POST / HTTP/1.1\r\nHost: {storage.host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {10**12}\r\n\r\n"):
        answer = exchange(storage.node.url, refused.encode() + b"[]" + second)
        assert len(parse_statuses(answer)) == 1 and parse_statuses(answer)[0] in (413, 415), answer[:300]
        assert b"501" not in answer and b"Unsupported method" not in answer


def test_a_cross_origin_admin_call_to_a_storage_node_is_refused(storage: Storage) -> None:
    url, token = storage.node.url, storage.node.token
    info = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "admin_getSyncInfo"}).encode()
    shutdown = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "admin_shutdown"}).encode()
    page = {"origin": "http://evil.example"}
    # What a web page can send without a CORS preflight: a text/plain POST.
    for body in (info, shutdown):
        assert post_raw(url, body, "text/plain", **page).status_code == 415
        assert post_raw(url, body, "text/plain;charset=UTF-8", **page, authorization=f"Bearer {token}").status_code == 415
    refusals = {
        "other origin": post_raw(url, info, **page, authorization=f"Bearer {token}"),
        "DNS rebinding": post_raw(url, info, host=f"evil.example:{storage.host.split(':')[1]}", authorization=f"Bearer {token}"),
        "no token": post_raw(url, info),
        "wrong token": post_raw(url, info, authorization="Bearer guess"),
        "shutdown without token": post_raw(url, shutdown),
    }
    assert {why: r.status_code for why, r in refusals.items()} == {
        "other origin": 403, "DNS rebinding": 403, "no token": 401, "wrong token": 401, "shutdown without token": 401}
    assert all("result" not in r.json() for r in refusals.values())
    assert "syncedBlock" in storage.rpc("admin_getSyncInfo", token=True)["result"], "the operator still gets in"
    assert storage.rpc("zgs_getStatus")["result"]["nextTxSeq"] >= 1, "public methods need no token; the node is up"


def test_a_1000_call_batch_is_refused(storage: Storage) -> None:
    seq = storage.upload.tx_seq

    def batch(size: int) -> list[dict[str, Any]]:
        return [{"jsonrpc": "2.0", "id": i, "method": "zgs_downloadSegmentWithProofByTxSeq", "params": [seq, i % 4]}
                for i in range(size)]

    body = json.dumps(batch(1000)).encode()
    started = time.monotonic()
    answer = post_raw(storage.node.url, body)
    assert answer.status_code == 200 and len(answer.content) < 1000, "one small error, not ~350 MB of segments"
    assert answer.json()["error"]["code"] == INVALID_REQUEST and "larger than 100" in answer.json()["error"]["message"]
    assert time.monotonic() - started < 10
    # The largest allowed batch still cannot build an unbounded answer: the response cap cuts it.
    capped = post_raw(storage.node.url, json.dumps(batch(100)).encode()).json()
    served = [a for a in capped if "result" in a]
    assert 0 < len(served) < 100 and all(a["error"]["code"] == RESPONSE_TOO_LARGE for a in capped[len(served):])
    assert len(json.dumps(capped)) <= MAX_RESPONSE_BYTES + 100 * 200


def test_a_huge_tx_seq_is_an_invalid_params_error(storage: Storage) -> None:
    before = len(storage.log.records)
    for value in (2**63, 2**64, 10**30, -1, 2**63 + 5):
        for method, params in (("zgs_getFileInfoByTxSeq", [value]), ("zgs_checkFileFinalized", [value]),
                               ("zgs_downloadSegmentWithProofByTxSeq", [value, 0]),
                               ("zgs_downloadSegmentWithProofByTxSeq", [storage.upload.tx_seq, value]),
                               ("zgs_downloadSegmentByTxSeq", [storage.upload.tx_seq, 0, value]),
                               ("zgs_getSectorProof", [value])):
            error = storage.rpc(method, *params)["error"]
            assert error["code"] == INVALID_PARAMS and "0..9223372036854775807" in error["message"], (method, value)
        assert storage.rpc("admin_getSyncStatus", value, token=True)["error"]["code"] == INVALID_PARAMS
    for path in ("/zgos/v1/segment/9223372036854775808/0", f"/zgos/v1/segment/{storage.upload.tx_seq}/{10**25}",
                 "/zgos/v1/file/99999999999999999999"):
        answer = httpx.get(storage.node.url + path, timeout=30)
        assert answer.status_code == 400 and "out of range" in answer.json()["error"], path
    put = httpx.put(f"{storage.node.url}/zgos/v1/segment/{2**64}/0", content=b"x" * 256,
                    headers={"content-type": "application/octet-stream"}, timeout=30)
    assert put.status_code == 400
    # a run of frames whose last index is past 2**63: each frame beyond the file is absent
    run = httpx.get(f"{storage.node.url}/zgos/v1/segments/{storage.upload.tx_seq}?first=0&count=3&step={2**62}")
    assert run.status_code == 200 and [decode_frame_header(run.content[-16:]).absent] == [True]
    assert storage.log.tracebacks(since=before) == [], "no OverflowError traceback in the node's log"


# --- the fuzz harness ------------------------------------------------------------------------


def node_profile(storage: Storage) -> FuzzProfile:
    return FuzzProfile(
        host=storage.host,
        rpc_methods=tuple(m for m in storage.node.server.methods if m != "admin_shutdown"),
        get_paths=("/", "/health", "/zgos/v1/segment/{n}/{n}", "/zgos/v1/file/{n}", "/zgos/v1/{s}",
                   "/zgos/v1/segments/{n}?first={n}&count={n}&step={n}", "/zgos/v1/segments/{n}?first={s}"),
        raw_uploads=(("/zgos/v1/segment/{n}/{n}", "application/octet-stream"),
                     ("/zgos/v1/segments/{n}", "application/octet-stream")),
        upload_headers=("X-Zg-Root", "X-Zg-File-Size", "X-Zg-Proof"),
        max_body_bytes=storage.node.server.limits.max_rpc_body_bytes,
        numbers=(storage.upload.tx_seq, 0, 1, 2, 3, 4, FILE_BYTES, storage.node.node.flow_context()[1]),
        hashes=("0x" + storage.upload.root.hex(),),
        headers=(("Authorization", f"Bearer {storage.node.token}"),),  # the admin surface is fuzzed too
    )


def indexer_profile(storage: Storage) -> FuzzProfile:
    root = "0x" + storage.upload.root.hex()
    return FuzzProfile(
        host=storage.indexer.url.removeprefix("http://"),
        rpc_methods=tuple(storage.indexer.server.front.rpc.methods),
        get_paths=("/file?root={h}", "/file", "/file/info/{h}", "/file/info/{s}", "/node/status", "/{s}"),
        max_body_bytes=storage.indexer.server.limits.max_rpc_body_bytes,
        numbers=(1, 2, 64, 65),
        hashes=(root,),
    )


def fuzz(storage: Storage, url: str, profile: FuzzProfile, tmp_path: Path, seed_offset: int) -> None:
    before = len(storage.log.records)
    assert_survives_fuzz(url, profile, seed_offset)
    assert storage.log.tracebacks(since=before) == []
    storage.assert_healthy(tmp_path)


def test_no_request_crashes_or_hangs_the_storage_node(storage: Storage, tmp_path: Path) -> None:
    fuzz(storage, storage.node.url, node_profile(storage), tmp_path, 0)


def test_no_request_crashes_or_hangs_the_indexer(storage: Storage, tmp_path: Path) -> None:
    fuzz(storage, storage.indexer.url, indexer_profile(storage), tmp_path, 1)
