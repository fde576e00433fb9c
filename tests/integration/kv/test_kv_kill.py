"""kill -9 of the KV node mid-replay (issue 15): the node runs as a process of its own
(``kvnode_process``) on a log of many transactions, is SIGKILLed while it replays them,
restarts on the same state dir, and ends in the state of a second node that replays the same
log from the same first block without interruption."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.kv.conftest import start_kv_node, submit_files
from tests.integration.kv.histories import History, ModelRun, assert_node_matches_model
from tests.integration.kv.kvnode_process import config_json
from tests.integration.storage.conftest import start_node
from tests.unit.kv.model import PlainModel
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.kv.node.app import STORE_FILE
from zgos.kv.spec.stream import compute_stream_tags, encode_stream_data
from zgos.runtime.netutil import call_jsonrpc, free_port
from zgos.storage.client import StorageClient

BATCHES = 4  # Flow transactions, alternating between two accounts
PER_BATCH = 20  # KV transactions submitted in each (batchSubmit)
WAIT_S = 60.0
REPO = Path(__file__).resolve().parents[3]


def submit_batches(storage: dict[int, StorageClient], history: History, run: ModelRun, tmp: Path) -> int:
    """Submit ``BATCHES`` x ``PER_BATCH`` random KV transactions and send their data; the last seq."""
    seq = -1
    for batch in range(BATCHES):
        sender = batch % 2
        assert storage[sender].flow is not None
        first = storage[sender].flow.num_submissions()  # type: ignore[union-attr]
        txs = [dataclasses.replace(history.next(first + i), sender=sender) for i in range(PER_BATCH)]
        files = [(encode_stream_data(tx.data) + os.urandom(8), compute_stream_tags(tx.tags))  # apart by trailing bytes
                 for tx in txs]
        for seq, tx in zip(submit_files(storage[sender], files, tmp / "files"), txs, strict=True):
            run.replay(seq, history.accounts[sender], tx)
    return seq


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "tests.integration.kv.kvnode_process", str(config)],
                               stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=REPO)
    return process


def next_seq(url: str) -> int | None:
    try:
        return int(call_jsonrpc(httpx.Client(timeout=2), url, "kv_getReplayStatus", [])["nextTxSeq"])
    except Exception:  # not up yet
        return None


def dump(path: Path) -> dict[str, Any]:
    """Every row of the store's history tables."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
                  for table in ("t_acl", "t_tx")}
        return tables | {"cursor": db.execute("SELECT next_seq FROM t_misc").fetchall()}
    finally:
        db.close()


def test_kill_9_of_the_kv_node_mid_replay_resumes_at_the_right_transaction_and_equals_a_fresh_replay(
        tmp_path: Path, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> None:
    bob: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=bob.address, value=10**19)
    storage_node = start_node(tmp_path / "storage", chain, deployment)
    flow = deployment.address("Flow")
    clients = {0: StorageClient([storage_node.url], chain, flow, new_account),
               1: StorageClient([storage_node.url], chain, flow, bob)}
    streams = (os.urandom(32), os.urandom(32), os.urandom(32))
    accounts = (bytes.fromhex(new_account.address[2:]), bytes.fromhex(bob.address[2:]))
    history, run = History(random.Random(9), streams, accounts), ModelRun(PlainModel(frozenset(streams[:2])))
    first_block = chain.block_number()
    last = submit_batches(clients, history, run, tmp_path)
    first_seq = min(run.results)
    port, state = free_port(), tmp_path / "killed"
    config = tmp_path / "kv.json"
    config.write_text(json.dumps(config_json(state, chain.rpc_url, flow, storage_node.url, port,
                                             frozenset(streams[:2]), first_block)))
    url, log = f"http://127.0.0.1:{port}", tmp_path / "kv.log"
    process = spawn(config, log)
    fresh = None
    try:
        deadline = time.monotonic() + WAIT_S
        while ((n := next_seq(url)) is None or n < first_seq + PER_BATCH) and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed_at = dump(state / STORE_FILE)
        resume = max(s for s, *_ in killed_at["t_tx"]) + 1
        assert first_seq + PER_BATCH <= resume <= last, f"killed at {resume}: not mid-replay ({first_seq}..{last})"
        assert [s for s, *_ in killed_at["t_tx"] if s >= first_seq] == list(range(first_seq, resume))
        versions = [row[3] for row in killed_at["t_acl"]]
        assert max(versions) < resume  # nothing of an unfinished transaction was kept
        assert killed_at["cursor"] == [(resume,)]

        process = spawn(config, log)
        fresh = start_kv_node(tmp_path / "fresh", chain, deployment, storage_node.url, frozenset(streams[:2]),
                              first_block=first_block)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not ((next_seq(url) or 0) > last and fresh.store.cursor().next_seq > last):
            time.sleep(0.05)
        restarted = log.read_text().split("kv node ready")[-1]
        batches = [line.split()[-1] for line in restarted.splitlines()
                   if line.startswith("zgos.kv.node.replayer kv replay: log entries ")]
        assert batches and int(batches[0].split("..")[0]) == resume, \
            "the restarted node went on at the first unreplayed log entry"

        assert dump(state / STORE_FILE) == dump(tmp_path / "fresh" / STORE_FILE)
        with httpx.Client(timeout=30) as http:
            for node_url in (url, fresh.server.url):
                def call(method: str, *params: object, node_url: str = node_url) -> Any:
                    return call_jsonrpc(http, node_url, method, list(params))
                got = {s: (r if r is None else r.split(":")[0]) for s in run.results
                       for r in [call("kv_getTransactionResult", s)]}
                assert got == run.results
                assert_node_matches_model(call, run.model, streams[:2], accounts)
        assert "Commit" in run.results.values()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        if fresh is not None:
            fresh.close()
        for client in clients.values():
            client.close()
        storage_node.stop()
