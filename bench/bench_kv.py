"""KV streams (issue 15, Performance), each against a baseline measured in the same run:

* write -> readable: ``KvClient.write`` (encode, Flow submit, upload, replay) then
  ``kv_getValue`` returns it; p50 of ``ZGOS_BENCH_KV_WRITES`` writes against the devnet's block
  time (goal: within 2 blocks; 0G takes 4-5 s);
* replay throughput: the node's replayer and store applying ``ZGOS_BENCH_KV_TXS`` transactions
  (10 writes of 100 B each, in the node's batches; the best of ``REPLAY_RUNS`` runs, each on a
  fresh store in a file of its own) against decoding the same transactions alone (as many
  runs, taken in turn with those of the replay; goal >= 0.5x). For scale, a bare SQLite
  ``executemany`` of a row per written key in the same batches (the floor of the per-key
  layout the store no longer has);
* point reads: the store's ``get`` against a plain SQLite point read of the same value, kept
  in a row keyed by (stream, key) in a scratch file; and ``kv_getValue`` over HTTP against that
  plain point read served by one JSON-RPC method on the same runtime stack (goal <= 2x both);
* listing 10,000 keys with ``KvClient.entries`` (pages of ``kv_getEntries``), against 2 s.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.bench_storage import _data_dir, _node
from bench.harness import bench_chain, report
from zgos.chain.accounts import devnet_role
from zgos.kv.client import KvClient
from zgos.kv.node.app import WORKER_THREADS, KvNode, KvNodeConfig
from zgos.kv.node.replayer import ReplayConfig, Replayer
from zgos.kv.node.rpc import MAX_QUERY_LEN
from zgos.kv.node.store import KvStore
from zgos.kv.spec.stream import (
    StreamData,
    StreamWrite,
    compute_stream_tags,
    decode_stream_data,
    encode_stream_data,
)
from zgos.runtime.jsonrpc import JsonRpcServer, Params, jsonrpc_app
from zgos.runtime.netutil import call_jsonrpc, free_port
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.storage.client import StorageClient
from zgos.storage.contracts import LogEntry
from zgos.storage.spec.flow import Submission, SubmissionNode

BLOCK_TIME_S = 1.0  # the devnet's
WRITES = int(os.environ.get("ZGOS_BENCH_KV_WRITES", "10"))
TXS = int(os.environ.get("ZGOS_BENCH_KV_TXS", "2000"))
LIST_KEYS = 10_000
REPLAY_RUNS = 7  # best of: each side's noise-free run is what is compared
STREAM = bytes(range(32))
SENDER = "0x" + "aa" * 20


def _transactions(count: int, writes_per_tx: int = 10) -> list[bytes]:
    return [encode_stream_data(StreamData(writes=tuple(
        StreamWrite(STREAM, f"key-{t}-{w}".encode(), os.urandom(100)) for w in range(writes_per_tx))))
        for t in range(count)]


def _entry(seq: int) -> LogEntry:
    submission = Submission(1, compute_stream_tags((STREAM,)), (SubmissionNode(bytes(32), 0),))
    return LogEntry(seq, SENDER, submission, 0, 1, seq, "0x")


def bench_replay(work: Path) -> None:
    raws = _transactions(TXS)
    stores = [KvStore(work / f"replay-{run}.sqlite", 0) for run in range(REPLAY_RUNS)]  # a fresh one a run
    size = ReplayConfig(frozenset()).batch_entries
    batches = [[_entry(seq) for seq in range(i, min(i + size, TXS))] for i in range(0, TXS, size)]
    decode_runs, replay_runs = [], []
    for store in stores:  # the runs alternate, so that a noisy spell slows both sides alike
        decode_runs.append(_timed(lambda: [decode_stream_data(raw) for raw in raws]))
        replay_runs.append(_timed(lambda store=store: _replay(store, raws, batches)))
    decode_s, replay_s = min(decode_runs), min(replay_runs)
    report(f"replay of {TXS} transactions (tx/s) vs decoding them alone", TXS / replay_s, TXS / decode_s, "tx/s", ">= 0.5x")
    rows_s = min(_insert_key_rows(work / f"key-rows-{run}.sqlite", raws, size) for run in range(3))
    report("(for scale) the per-key layout's floor, a bare SQLite executemany of a row per written key (tx/s), "
           "vs decoding", TXS / rows_s, TXS / decode_s, "tx/s")
    bench_point_reads(stores[-1], raws, work / "values.sqlite")
    for store in stores:
        store.close()


def _replay(store: KvStore, raws: list[bytes], batches: list[list[LogEntry]]) -> None:
    replayer = Replayer(store, None, lambda entry: raws[entry.seq], ReplayConfig(frozenset({STREAM})))  # type: ignore[arg-type]
    for batch in batches:
        replayer.replay_batch(batch)


def _plain_db(path: Path, table: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(table)
    return db


def _insert_key_rows(path: Path, raws: list[bytes], batch: int) -> float:
    """Seconds the old layout's floor takes: a row per written key, a SQLite transaction per
    batch, nothing else."""
    db = _plain_db(path, "CREATE TABLE t_stream (stream_id BLOB NOT NULL, key BLOB NOT NULL, version INTEGER NOT NULL, "
                         "data BLOB NOT NULL, PRIMARY KEY (stream_id, key, version)) WITHOUT ROWID")
    rows = [[(w.stream_id, w.key, seq, w.data) for w in decode_stream_data(raw).writes] for seq, raw in enumerate(raws)]
    start = time.perf_counter()
    for first in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t_stream VALUES (?, ?, ?, ?)", [row for tx in rows[first:first + batch] for row in tx])
        db.execute("COMMIT")
    db.close()
    return time.perf_counter() - start


def bench_point_reads(store: KvStore, raws: list[bytes], path: Path) -> None:
    """The store's ``get`` against a plain SQLite point read of the same value, kept in a row
    keyed by (stream, key) in a scratch file of its own."""
    key = b"key-7-3"
    plain = _plain_db(path, "CREATE TABLE t_value (stream_id BLOB NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL, "
                            "PRIMARY KEY (stream_id, key)) WITHOUT ROWID")
    plain.executemany("INSERT OR REPLACE INTO t_value VALUES (?, ?, ?)",
                      [(w.stream_id, w.key, w.data) for raw in raws for w in decode_stream_data(raw).writes])
    sql = "SELECT data FROM t_value WHERE stream_id = ? AND key = ?"
    assert plain.execute(sql, (STREAM, key)).fetchone()[0] == store.at().get(STREAM, key).data  # type: ignore[union-attr]
    baseline = statistics.median(_timed(lambda: plain.execute(sql, (STREAM, key)).fetchone()) for _ in range(2000))
    ours = statistics.median(_timed(lambda: store.at().get(STREAM, key)) for _ in range(2000))
    plain.close()
    report("store point read p50 (us) vs a plain SQLite point read", ours * 1e6, baseline * 1e6, "us", "<= 2x")


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def bench_network(work: Path) -> None:
    with bench_chain(block_time_s=BLOCK_TIME_S) as bc:
        data_dir = _data_dir(bc, work / "data")
        port = free_port()
        storage = _node(data_dir, "storage-0", port, work / "node.log")
        node = KvNode(KvNodeConfig(state_dir=work / "kv", rpc_url=bc.anvil.url, flow_address=bc.deployment.address("Flow"),
                                   storage_nodes=(f"http://127.0.0.1:{port}",), port=free_port(),
                                   replay=ReplayConfig(frozenset({STREAM}), first_block=bc.deployment.deploy_block)))
        node.start()
        try:
            with KvClient(node.server.url, StorageClient([f"http://127.0.0.1:{port}"], bc.chain,
                                                         bc.deployment.address("Flow"), devnet_role("user"))) as client:
                bench_write_latency(client)
                bench_listing(client)
                bench_rpc_read(client, node, work)
        finally:
            node.close()
            storage.terminate()
            storage.wait()


def bench_rpc_read(client: KvClient, node: KvNode, work: Path) -> None:
    """``kv_getValue`` over HTTP against a plain SQLite point read of the same value served the
    same way: one JSON-RPC method on the same runtime (guarded edge, worker pool) answering
    from a (stream, key) table, so both sides pay the same transport."""
    value = client.get(STREAM, b"w-0")
    assert value is not None
    plain = _plain_db(work / "rpc-plain.sqlite", "CREATE TABLE t_value (stream_id BLOB NOT NULL, key BLOB NOT NULL, "
                      "data BLOB NOT NULL, PRIMARY KEY (stream_id, key)) WITHOUT ROWID")
    plain.execute("INSERT INTO t_value VALUES (?, ?, ?)", (STREAM, b"w-0", value.data))
    plain.commit()
    plain.close()
    plain = sqlite3.connect(work / "rpc-plain.sqlite", check_same_thread=False)  # read in the server's workers
    lock = threading.Lock()

    def plain_get(params: Params) -> Any:
        with lock:
            row = plain.execute("SELECT data FROM t_value WHERE stream_id = ? AND key = ?",
                                (bytes.fromhex(str(params[0])[2:]), base64.b64decode(str(params[1])))).fetchone()
        return {"data": base64.b64encode(row[0]).decode(), "size": len(row[0]), "version": 1}

    app = jsonrpc_app(JsonRpcServer({"plain_getValue": plain_get}), anyio.CapacityLimiter(WORKER_THREADS), [])
    server = EdgeServer(app, bind_listener("127.0.0.1", 0), node.server_policy)
    server.start()
    try:
        with httpx.Client() as http:
            args = ["0x" + STREAM.hex(), base64.b64encode(b"w-0").decode(), 0, MAX_QUERY_LEN]
            assert base64.b64decode(call_jsonrpc(http, server.url, "plain_getValue", args)["data"]) == value.data
            baseline = statistics.median(_timed(lambda: call_jsonrpc(http, server.url, "plain_getValue", args))
                                         for _ in range(300))
        ours = statistics.median(_timed(lambda: client.get(STREAM, b"w-0")) for _ in range(300))
    finally:
        server.stop()
        plain.close()
    report("kv_getValue over HTTP p50 (ms) vs a plain SQLite point read served by the same JSON-RPC stack",
           ours * 1e3, baseline * 1e3, "ms", "<= 2x")


def bench_write_latency(client: KvClient) -> None:
    latencies = []
    for i in range(WRITES):
        start = time.perf_counter()
        client.write(StreamData(writes=(StreamWrite(STREAM, f"w-{i}".encode(), b"v"),)))
        assert client.get(STREAM, f"w-{i}".encode()) is not None
        latencies.append(time.perf_counter() - start)
    report(f"write -> readable p50 of {WRITES} writes (s) vs the block time", statistics.median(latencies),
           BLOCK_TIME_S, "s", "<= 2x")


def bench_listing(client: KvClient) -> None:
    batch = 1000
    for start in range(0, LIST_KEYS, batch):
        client.write(StreamData(writes=tuple(StreamWrite(STREAM, f"list-{i:05d}".encode(), b"v" * 32)
                                             for i in range(start, start + batch))))
    seconds = _timed(lambda: sum(1 for _ in client.entries(STREAM, prefix=b"list-")))
    report(f"listing {LIST_KEYS} keys with paging (s) vs the 2 s goal", seconds, 2.0, "s", "<= 1x")


def main() -> None:
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="zgos-bench-kv-") as tmp:
        bench_replay(Path(tmp))
        bench_network(Path(tmp))
