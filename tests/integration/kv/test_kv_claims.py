"""Issue 15's must-holds for the KV node, end to end: transactions uploaded through a real
storage node on the session chain, replayed by a real KV node, read back with 0G's kv_* calls.
One storage node and one KV node serve the module (``shared_kv``); each test takes streams of
its own."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.integration.kv.conftest import SharedKv, start_kv_node
from tests.integration.kv.histories import History, ModelRun, assert_node_matches_model, b64
from tests.nodejs import run_node
from tests.unit.kv.model import PlainModel
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.kv.client import KvClient
from zgos.kv.spec.stream import (
    AccessControl,
    AclOp,
    StreamData,
    StreamRead,
    StreamWrite,
    compute_stream_tags,
    encode_stream_data,
)
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree

REPLAY_WAIT_S = 60.0


def put(stream: bytes, key: bytes, value: bytes, **fields: Any) -> StreamData:
    return StreamData(writes=(StreamWrite(stream, key, value),), **fields)


def acl(*controls: AccessControl) -> StreamData:
    return StreamData(controls=controls)


def address(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


def roles(client: KvClient, stream: bytes, accounts: list[LocalAccount], keys: list[bytes]) -> dict[str, Any]:
    """Every value and role the node reports for ``accounts`` and ``keys``."""
    sid = "0x" + stream.hex()
    answers: dict[str, Any] = {}
    for key in keys:
        answers[f"value {key!r}"] = client.call("kv_getValue", sid, b64(key), 0, 1024)
        answers[f"special {key!r}"] = client.call("kv_isSpecialKey", sid, b64(key))
    for account in accounts:
        a = account.address
        answers[f"admin {a}"] = client.call("kv_isAdmin", a, sid)
        answers[f"writer {a}"] = client.call("kv_isWriterOfStream", a, sid)
        for key in keys:
            answers[f"writer {a} {key!r}"] = client.call("kv_isWriterOfKey", a, sid, b64(key))
    return answers


def test_a_writer_without_permission_an_acl_op_by_a_non_admin_and_a_stale_read_set_version_each_get_their_failure_and_leave_state_untouched(
        shared_kv: SharedKv, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    from eth_account import Account

    from zgos.chain.accounts import devnet_role

    stream = shared_kv.new_stream()
    alice = new_account
    bob: LocalAccount = Account.create()
    carol: LocalAccount = Account.create()
    for account in (bob, carol):
        chain.transact(devnet_role("deployer"), to=account.address, value=10**19)
    keys, everyone = [b"k", b"open", b"vip"], [alice, bob, carol]
    with shared_kv.client(chain, deployment, alice) as a, shared_kv.client(chain, deployment, bob) as b, \
            shared_kv.client(chain, deployment, carol) as c:
        first = a.write(put(stream, b"k", b"alice's"))
        assert first.result == "Commit"  # the first writer of a new stream becomes its admin
        before = roles(a, stream, everyone, keys)
        assert b.write(put(stream, b"k", b"bob's")).result == "SenderNoWritePermission"
        assert b.write(acl(AccessControl(AclOp.GRANT_WRITER, stream, account=address(bob)))).result == \
            "SenderNoWritePermission"
        assert roles(a, stream, everyone, keys) == before

        assert a.write(acl(AccessControl(AclOp.GRANT_WRITER, stream, account=address(bob)),
                           AccessControl(AclOp.SET_KEY_TO_SPECIAL, stream, key=b"vip"),
                           AccessControl(AclOp.GRANT_SPECIAL_WRITER, stream, b"vip", address(carol)))).committed
        again = a.write(put(stream, b"k", b"alice's again"))
        assert again.committed
        before = roles(a, stream, everyone, keys)
        assert before[f"writer {bob.address}"] and not before[f"admin {bob.address}"]

        denied = c.write(put(stream, b"open", b"carol's")).result
        assert denied == f"WritePermissionDenied: stream: 0x{stream.hex()}, key: open"
        refused = b.write(acl(AccessControl(AclOp.SET_KEY_TO_NORMAL, stream, key=b"vip"))).result
        assert refused == (f"AccessControlPermissionDenied: operation: SET_KEY_TO_NORMAL, stream: 0x{stream.hex()}, "
                           f"key: vip, account: 0x{'00' * 20}")
        revoke = b.write(acl(AccessControl(AclOp.REVOKE_WRITER, stream, account=address(alice)))).result
        assert revoke is not None and revoke.startswith("AccessControlPermissionDenied: operation: REVOKE_WRITER_ROLE")
        stale = StreamData(first.tx_seq, reads=(StreamRead(stream, b"k"),), writes=(StreamWrite(stream, b"open", b"x"),))
        assert b.write(stale).result == "VersionConfliction"  # k changed after the version Bob read
        assert roles(a, stream, everyone, keys) == before
        assert b.write(StreamData(again.tx_seq, reads=(StreamRead(stream, b"k"),),
                                  writes=(StreamWrite(stream, b"open", b"x"),))).committed  # a current read
        entry = a.get(stream, b"k")
        assert entry is not None and (entry.data, entry.version) == (b"alice's again", again.tx_seq)


def test_writing_the_same_transaction_twice_makes_two_log_entries(
        shared_kv: SharedKv, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    stream = shared_kv.new_stream()
    with shared_kv.client(chain, deployment, new_account) as client:
        first = client.write(put(stream, b"k", b"a"))
        client.write(put(stream, b"k", b"b"))
        third = client.write(put(stream, b"k", b"a"))  # the same bytes as the first: a new transaction
        assert third.committed and third.tx_seq > first.tx_seq and third.root == first.root
        entry = client.get(stream, b"k")
        assert entry is not None and (entry.data, entry.version) == (b"a", third.tx_seq)


def submit_without_data(storage: StorageClient, tags: bytes) -> int:
    """A KV transaction on the Flow whose segments are never sent to any storage node."""
    assert storage.flow is not None and storage.account is not None
    tree = FileTree.from_bytes(encode_stream_data(put(b"\x00" * 32, b"never", os.urandom(64))))
    return storage.flow.submit(storage.account, [tree.submission(tags)]).entries[0].seq


def test_a_transaction_that_fails_replay_is_reported_and_later_transactions_on_the_stream_apply(
        shared_kv: SharedKv, tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    stream = os.urandom(32)
    node = start_kv_node(tmp_path / "kv", chain, deployment, shared_kv.storage.url, frozenset({stream}),
                         data_deadline_s=3.0)  # short: a missing file holds replay this long
    storage = StorageClient([shared_kv.storage.url], chain, deployment.address("Flow"), new_account)
    try:
        with KvClient(node.server.url, storage) as client:
            first = client.write(put(stream, b"k", b"v1"))
            assert first.committed
            garbage = tmp_path / "garbage"
            garbage.write_bytes(b"\x00" * 8 + b"\xff\xff\xff\xff" + os.urandom(100))
            broken = storage.upload(garbage, tags=compute_stream_tags((stream,)), new_entry=True).tx_seq
            missing = submit_without_data(storage, compute_stream_tags((stream,)))
            started = time.monotonic()
            later = client.write(put(stream, b"k", b"v2", version=first.tx_seq))  # k unchanged since v1
            assert later.committed, later.result
            assert time.monotonic() - started < 20, "the missing data held the stream past its deadline"
            assert client.result(broken) == "DataParseError: a list of 4294967295 items (at most 65536)"
            assert client.result(missing) == "DataUnavailable"
            entry = client.get(stream, b"k")
            assert entry is not None and (entry.data, entry.version) == (b"v2", later.tx_seq)
            counts = client.status()["results"]
            assert counts["DataParseError"] == 1 and counts["DataUnavailable"] == 1 and counts["Commit"] == 2
    finally:
        node.close()
        storage.close()


def test_30_random_transactions_from_3_accounts_end_in_the_state_of_the_plain_model_through_the_chain(
        shared_kv: SharedKv, tmp_path: Path, chain: Chain, deployment: Deployment) -> None:
    from eth_account import Account

    from zgos.chain.accounts import devnet_role

    accounts: list[LocalAccount] = [Account.create() for _ in range(3)]
    for account in accounts:
        chain.transact(devnet_role("deployer"), to=account.address, value=10**19)
    senders = tuple(address(a) for a in accounts)
    streams = (shared_kv.new_stream(), shared_kv.new_stream(), os.urandom(32))  # the third is not the node's
    history, run = History(random.Random(30), streams, senders), ModelRun(PlainModel(frozenset(shared_kv.node.config.replay.monitored)))
    clients = [StorageClient([shared_kv.storage.url], chain, deployment.address("Flow"), a) for a in accounts]
    flow = FlowContract(chain, deployment.address("Flow"))
    seq = flow.num_submissions()
    with shared_kv.client(chain, deployment) as reader:
        for _ in range(30):
            tx = history.next(seq)
            path = tmp_path / f"tx-{seq}"
            path.write_bytes(encode_stream_data(tx.data))
            seq = clients[tx.sender].upload(path, tags=compute_stream_tags(tx.tags), new_entry=True).tx_seq
            run.replay(seq, senders[tx.sender], tx)
            seq += 1
        deadline = time.monotonic() + REPLAY_WAIT_S
        while int(reader.status()["nextTxSeq"]) < seq and time.monotonic() < deadline:
            time.sleep(0.05)
        for tx_seq, expected in run.results.items():
            result = reader.result(tx_seq)
            assert (result if result is None else result.split(":")[0]) == expected, tx_seq
        assert_node_matches_model(reader.call, run.model, streams[:2], senders)
        assert "Commit" in run.results.values()
    for client in clients:
        client.close()


def test_0g_ts_sdk_batcher_writes_are_read_by_zgos_and_zgos_writes_are_read_by_the_sdk_kv_client(
        shared_kv: SharedKv, tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    stream = shared_kv.new_stream()
    sid = "0x" + stream.hex()
    theirs = {b"sdk/alpha": b"written by the TS SDK", b"sdk/big": os.urandom(300_000), b"\x00\xffbin": b"\x01"}
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([[k.hex(), v.hex()] for k, v in theirs.items()]))
    stdout = run_node("kv_batcher.cjs", "write", chain.rpc_url, deployment.address("Flow"), shared_kv.storage.url,
                      sid, str(pairs), env={"ZG_PRIVATE_KEY": new_account.key.hex()})
    sdk_seq = json.loads(stdout.strip().splitlines()[-1])["txSeq"]
    with shared_kv.client(chain, deployment, new_account) as client:
        assert client.wait_replayed(sdk_seq, REPLAY_WAIT_S) == "Commit"
        for key, value in theirs.items():  # what the SDK wrote, zgos reads
            entry = client.get(stream, key)
            assert entry is not None and entry.data == value and entry.version == sdk_seq, key
        assert client.call("kv_isAdmin", new_account.address, sid)  # the SDK's sender: the first writer

        # The SDK's KvClient.getValue asks for the next piece of a value at the length of the
        # base64 text read so far, not at the byte count, so it misreads any value over one
        # piece (256 KiB), from 0G's node as from this one: what the SDK reads here fits in one.
        ours = {b"zgos/one": b"written by zgos", b"zgos/big": os.urandom(200_000), b"sdk/alpha": b"overwritten",
                b"sdk/big": b"made small"}
        written = client.write(StreamData(writes=tuple(StreamWrite(stream, k, v) for k, v in ours.items())))
        assert written.committed
    keys = tmp_path / "keys.json"
    asked = [*ours, b"never written"]
    keys.write_text(json.dumps([k.hex() for k in asked]))
    read = json.loads(run_node("kv_batcher.cjs", "read", shared_kv.url, sid, str(keys)).strip().splitlines()[-1])
    assert read["values"] == {k.hex(): (ours[k].hex() if k in ours else None) for k in asked}  # zgos wrote, the SDK reads
    final = {**theirs, **ours}
    assert read["iterated"] == [[k.hex(), final[k].hex(), written.tx_seq if k in ours else sdk_seq] for k in sorted(final)]
