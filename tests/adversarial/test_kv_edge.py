"""The KV node against bad input (issue 15, "bad input gets a clear error; nothing crashes"):
malformed transactions on the log, oversized keys in the client, bad ``kv_*`` params, then
the seeded fuzz harness (``httpfuzz``). After each, the node still serves what it held."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.adversarial.httpfuzz import FuzzProfile, assert_survives_fuzz
from tests.adversarial.logwatch import LogRecords, service_logs
from tests.integration.kv.conftest import start_kv_node, submit_files
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.kv.client import KvClient
from zgos.kv.node.app import MAX_RPC_BODY_BYTES, KvNode
from zgos.kv.node.rpc import kv_methods
from zgos.kv.spec.stream import (
    MAX_KEY_SIZE,
    MAX_SET_SIZE,
    AccessControl,
    AclOp,
    InvalidStreamData,
    StreamData,
    StreamRead,
    StreamWrite,
    compute_stream_tags,
    encode_stream_data,
)
from zgos.runtime.jsonrpc import INVALID_PARAMS
from zgos.storage.client import StorageClient

VALUE = b"still here"


@dataclass
class Kv:
    node: KvNode
    storage: RunningNode
    stream: bytes
    account: LocalAccount
    tx_seq: int  # the transaction that wrote VALUE under b"k"
    log: LogRecords
    http: httpx.Client

    def client(self, chain: Chain, deployment: Deployment) -> KvClient:
        return KvClient(self.node.server.url, StorageClient([self.storage.url], chain, deployment.address("Flow"),
                                                            self.account))

    def rpc(self, method: str, *params: Any) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer: dict[str, Any] = self.http.post(self.node.server.url, json=body).json()
        return answer

    def assert_healthy(self) -> None:
        answer = self.rpc("kv_getValue", "0x" + self.stream.hex(), base64.b64encode(b"k").decode(), 0, 100)
        assert base64.b64decode(answer["result"]["data"]) == VALUE
        assert answer["result"]["version"] == self.tx_seq


@pytest.fixture(scope="module")
def kv(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[Kv]:
    with service_logs() as log:
        yield from _kv(tmp_path_factory, chain, deployment, log)


def _kv(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment,
        log: LogRecords) -> Iterator[Kv]:
    tmp = tmp_path_factory.mktemp("kv-edge")
    storage = start_node(tmp / "storage", chain, deployment)
    stream = os.urandom(32)
    node = start_kv_node(tmp / "kv", chain, deployment, storage.url, frozenset({stream}))
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**19)
    with KvClient(node.server.url, StorageClient([storage.url], chain, deployment.address("Flow"), account)) as c:
        written = c.write(StreamData(writes=(StreamWrite(stream, b"k", VALUE),)))
    try:
        with httpx.Client(timeout=60) as http:
            yield Kv(node, storage, stream, account, written.tx_seq, log, http)
    finally:
        node.close()
        storage.stop()


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def test_malformed_transactions_on_the_log_get_a_data_parse_error_and_the_node_goes_on(
        kv: Kv, tmp_path: Path, chain: Chain, deployment: Deployment) -> None:
    s = kv.stream
    good = encode_stream_data(StreamData(writes=(StreamWrite(s, b"k2", b"v"),)))
    version = bytes(8)
    malformed = {
        "truncated": good[:-1],
        "unknown op": version + u32(0) + u32(0) + u32(1) + b"\x99" + s,
        "too long": version + u32(0) + u32(MAX_SET_SIZE + 1),
        "empty key": version + u32(1) + s + b"\x00\x00\x00" + u32(0) + u32(0),
        "empty file": b"\x00",  # a file is at least one byte: 0G stores no empty files
    }
    tags = compute_stream_tags((s,))
    storage = StorageClient([kv.storage.url], chain, deployment.address("Flow"), kv.account)
    with kv.client(chain, deployment) as client:
        seqs = submit_files(storage, [(raw, tags) for raw in malformed.values()], tmp_path)
        after = client.write(StreamData(writes=(StreamWrite(s, b"after", b"applied"),)))
        results = dict(zip(malformed, (client.result(seq) for seq in seqs), strict=True))
        assert results == {
            "truncated": f"DataParseError: the data ends at byte {len(good) - 1}, 4 more bytes expected at byte "
                         f"{len(good) - 4}",
            "unknown op": "DataParseError: unknown access-control op 0x99",
            "too long": f"DataParseError: a list of {MAX_SET_SIZE + 1} items (at most {MAX_SET_SIZE})",
            "empty key": "DataParseError: an empty key at byte 44",
            "empty file": "DataParseError: the data ends at byte 1, 8 more bytes expected at byte 0",
        }
        assert after.committed
        entry = client.get(s, b"after")
        assert entry is not None and entry.data == b"applied"
    storage.close()
    kv.assert_healthy()


def test_an_oversized_key_is_refused_by_the_client_before_anything_is_paid(
        kv: Kv, chain: Chain, deployment: Deployment) -> None:
    with kv.client(chain, deployment) as client:
        assert client.storage is not None and client.storage.flow is not None
        submissions = client.storage.flow.num_submissions()
        for data in (StreamData(writes=(StreamWrite(kv.stream, b"x" * (MAX_KEY_SIZE + 1), b"v"),)),
                     StreamData(writes=(StreamWrite(kv.stream, b"", b"v"),)),
                     StreamData(reads=(StreamRead(kv.stream, b""),), writes=(StreamWrite(kv.stream, b"k", b"v"),)),
                     StreamData(controls=(AccessControl(AclOp.GRANT_WRITER, kv.stream),)),
                     StreamData(writes=(StreamWrite(b"short", b"k", b"v"),))):
            with pytest.raises(InvalidStreamData):
                client.write(data)
        assert client.storage.flow.num_submissions() == submissions
    kv.assert_healthy()


def test_bad_rpc_params_get_invalid_params_naming_the_parameter(kv: Kv) -> None:
    sid, key = "0x" + kv.stream.hex(), base64.b64encode(b"k").decode()
    account = "0x" + "11" * 20
    cases: list[tuple[str, list[Any], str]] = [
        ("kv_getValue", [sid, key, 0], "missing parameter 3 (len)"),
        ("kv_getValue", [sid, "not base64!", 0, 10], "key"),
        ("kv_getValue", [sid, "", 0, 10], "key"),
        ("kv_getValue", ["0x1234", key, 0, 10], "streamId must be 0x and 64 hex digits"),
        ("kv_getValue", [sid[:-1] + "g", key, 0, 10], "streamId"),
        ("kv_getValue", [12, key, 0, 10], "streamId"),
        ("kv_getValue", [sid, key, 0, 256 * 1024 + 1], "len must be an integer in 0..262144"),
        ("kv_getValue", [sid, key, -1, 10], "startIndex"),
        ("kv_getValue", [sid, key, "0", 10], "startIndex"),
        ("kv_getValue", [sid, key, 1.5, 10], "startIndex"),
        ("kv_getValue", [sid, key, True, 10], "startIndex"),
        ("kv_getValue", [sid, key, 2**64, 10], "startIndex"),
        ("kv_getValue", [sid, key, len(VALUE) + 1, 10], f"startIndex {len(VALUE) + 1} is past the value's"),
        ("kv_getValue", [sid, key, 0, 10, -1], "version"),
        ("kv_getValue", [sid, key, 0, 10, 2**64], "version"),
        ("kv_getNext", [sid, key, 0, 10, "yes"], "inclusive"),
        ("kv_getFirst", [sid, 0, None], "len"),
        ("kv_getTransactionResult", [-5], "txSeq"),
        ("kv_getTransactionResult", [2**63], "txSeq"),
        ("kv_getTransactionResult", [], "missing parameter 0 (txSeq)"),
        ("kv_isAdmin", ["0x1234", sid], "account must be 0x and 40 hex digits"),
        ("kv_isWriterOfKey", [account, sid, None], "key"),
        ("kv_hasWritePermission", [account, sid, key, "latest"], "version"),
        ("kv_isSpecialKey", [{"streamId": sid}, key], "streamId"),
    ]
    for method, params, fragment in cases:
        answer = kv.rpc(method, *params)
        assert "error" in answer, (method, params, answer)
        assert answer["error"]["code"] == INVALID_PARAMS and fragment in answer["error"]["message"], \
            (method, params, answer["error"])
    assert kv.rpc("kv_getValue", sid, key, len(VALUE), 10)["result"]["data"] == ""  # at the end: empty, no error
    assert kv.rpc("kv_getTransactionResult", 10**12)["result"] is None
    never = base64.b64encode(b"never written").decode()
    assert kv.rpc("kv_getValue", sid, never, 5, 10)["result"] == {"version": 0, "data": "", "size": 0}
    assert kv.log.tracebacks() == []
    kv.assert_healthy()


def test_no_request_crashes_or_hangs_the_kv_node(kv: Kv) -> None:
    methods = tuple(kv_methods(kv.node.store, frozenset({kv.stream}), kv.node.status))
    profile = FuzzProfile(
        host=kv.node.server.url.removeprefix("http://"), rpc_methods=methods,
        get_paths=("/", "/{s}", "/health"), max_body_bytes=MAX_RPC_BODY_BYTES,
        numbers=(kv.tx_seq, 0, 1, len(VALUE), 256 * 1024), hashes=("0x" + kv.stream.hex(),),
    )
    before = len(kv.log.records)
    assert_survives_fuzz(kv.node.server.url, profile, seed_offset=15)
    assert kv.log.tracebacks(since=before) == []
    kv.assert_healthy()
