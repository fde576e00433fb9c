"""The KV node's store, replayer and RPC against the plain model (issue 15, "1,000 random
transactions from 3 accounts").

The 1,000 transactions are real ``LogEntry`` values (tags, sender, the file's Merkle nodes and
length) handed to the node's own ``Replayer.replay_entry``, whose fetch returns the encoded
bytes (uploading 1,000 files one by one through the chain would take minutes); the SQLite
store, the replay rules and the ``kv_*`` answers over HTTP are the node's. The chain variant
(``..._through_the_chain``) lives with the other end-to-end tests in ``test_kv_claims.py``."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import httpx
from eth_account import Account

from tests.integration.kv.histories import History, ModelRun, assert_node_matches_model
from tests.unit.kv.model import PlainModel
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.kv.node.app import KvNode, KvNodeConfig
from zgos.kv.node.replayer import ReplayConfig, Replayer
from zgos.kv.spec.stream import compute_stream_tags, encode_stream_data
from zgos.runtime.netutil import call_jsonrpc, free_port
from zgos.storage.contracts import LogEntry
from zgos.storage.spec.filetree import FileTree

TRANSACTIONS = 1000
CHECKPOINTS = (250, 500, 750)
FIRST_BLOCK = 10**6  # the log entries' own block numbers (the replayer never reads the chain here)


def log_entry(seq: int, sender: bytes, raw: bytes, tags: bytes) -> LogEntry:
    """The ``Submit`` event a client's upload of ``raw`` tagged ``tags`` would produce."""
    submission = FileTree.from_bytes(raw).submission(tags)
    return LogEntry(seq, "0x" + sender.hex(), submission, start_entry=seq * 16, sectors=16,
                    block_number=FIRST_BLOCK + seq // 3, tx_hash="0x" + bytes(32).hex())


def test_1000_random_transactions_from_3_accounts_end_in_the_state_of_the_plain_model(
        tmp_path: Path, chain: Chain, deployment: Deployment) -> None:
    accounts = tuple(bytes.fromhex(Account.create().address[2:]) for _ in range(3))
    streams = (os.urandom(32), os.urandom(32), os.urandom(32))  # the third is not the node's
    monitored = frozenset(streams[:2])
    config = KvNodeConfig(tmp_path / "kv", chain.rpc_url, deployment.address("Flow"), ("http://127.0.0.1:9",),
                          ReplayConfig(monitored, first_block=FIRST_BLOCK), port=free_port())
    node = KvNode(config)  # the replayer thread is not started: this test feeds it the log
    files: dict[int, bytes] = {}
    replayer = Replayer(node.store, node.replayer.flow, lambda entry: files[entry.seq], config.replay)
    history, run = History(random.Random(15), streams, accounts), ModelRun(PlainModel(monitored))
    node.server.start()
    try:
        started = time.monotonic()
        for seq in range(TRANSACTIONS):
            tx = history.next(seq)
            files[seq] = encode_stream_data(tx.data)
            replayer.replay_entry(log_entry(seq, accounts[tx.sender], files[seq], compute_stream_tags(tx.tags)))
            run.replay(seq, accounts[tx.sender], tx)
            if seq in CHECKPOINTS:
                run.snapshot(seq)
        replay_s = time.monotonic() - started
        with httpx.Client(timeout=30) as http:
            def call(method: str, *params: object) -> object:
                return call_jsonrpc(http, node.server.url, method, list(params))

            results = {seq: call("kv_getTransactionResult", seq) for seq in range(TRANSACTIONS)}
            assert {s: r if r is None else str(r).split(":")[0] for s, r in results.items()} == run.results
            assert_node_matches_model(call, run.model, streams[:2], accounts)
            for seq, snapshot in run.snapshots.items():
                assert_node_matches_model(call, snapshot, streams[:2], accounts, version=seq)
            assert call("kv_getReplayStatus")["nextTxSeq"] == TRANSACTIONS  # type: ignore[index]
        outcomes = {str(r).split(":")[0] for r in results.values()}
        assert {"Commit", "VersionConfliction", "SenderNoWritePermission", "WritePermissionDenied",
                "AccessControlPermissionDenied", "TagsMismatch", "None"} <= outcomes, outcomes
        print(f"replayed {TRANSACTIONS} transactions in {replay_s:.1f}s; outcomes {sorted(outcomes)}")
    finally:
        node.close()
