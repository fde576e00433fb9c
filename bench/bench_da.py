"""DA benchmarks.

1. Encode + commit + cell proofs of a 16 MiB blob with ``Encoder`` (2 processes) vs the same
   raw ckzg calls (``blob_to_kzg_commitment`` + ``compute_cells_and_kzg_proofs``) on the same
   field elements over an identical 2-process pool. Goal: ours / raw <= 1.2.
2. A 1 MiB blob from ``DisperseBlob`` to an on-chain certificate with 4 signers, each service
   its own ``zg da`` process against anvil with the devnet's 1 s blocks. Goal <= 3 s.
3. Gas of ``DAEntrance.submitCertificate`` (aggregate of 4 keys, hash-to-G2, pairing, fees).
4. Sustained throughput: ``STREAM_BLOBS`` blobs submitted back-to-back through the same real
   processes (disperser, 4 signers, anvil) until every one has its on-chain certificate, vs raw
   ckzg ``compute_cells_and_kzg_proofs`` over the same rows on a 2-process pool, measured right
   after in the same run. Goal (issue 19): certified MB/s >= 0.8x raw. ``ZGOS_BENCH_DA=stream``
   runs only this one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ckzg
import psutil

from bench.harness import BenchChain, bench_chain, report, start_zg
from zgos.da.client import DisperserClient
from zgos.da.proto import disperser_pb2
from zgos.da.rpc import STATUS_POLL_S
from zgos.da.spec import kzg
from zgos.da.spec.blob import BYTES_PER_ROW_PAYLOAD, pack_rows
from zgos.da.spec.encoding import Encoder
from zgos.runtime.netutil import free_port, port_in_use, wait_until

ENCODE_BYTES = 16 * 2**20
CERT_BYTES = 2**20
CERT_RUNS = 3
WORKERS = 2
SIGNERS = 4
BENCH_SUBMITTER = "0x" + "11" * 20  # any address: the id hashes it like the contract does
DEVNET_BLOCK_TIME_S = 1.0
STREAM_BLOBS = int(os.environ.get("ZGOS_BENCH_DA_BLOBS", "12"))
STREAM_ROWS_PER_BLOB = int(os.environ.get("ZGOS_BENCH_DA_ROWS", "16"))  # whole rows: no padding
STREAM_TIMEOUT_S = 600.0

_setup: Any = None


def _raw_init() -> None:
    global _setup
    _setup = ckzg.load_trusted_setup(str(kzg.TRUSTED_SETUP_PATH), kzg.PROVER_PRECOMPUTE)


def _raw_row(row: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
    commitment = ckzg.blob_to_kzg_commitment(row, _setup)
    cells, proofs = ckzg.compute_cells_and_kzg_proofs(row, _setup)
    return commitment, cells, proofs


def _raw_cells(row: bytes) -> tuple[list[bytes], list[bytes]]:
    cells, proofs = ckzg.compute_cells_and_kzg_proofs(row, _setup)
    return cells, proofs


def _warm_raw(_: int) -> None:
    time.sleep(0.05)


def bench_encoding() -> None:
    data = os.urandom(ENCODE_BYTES)
    rows = pack_rows(data)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=context, initializer=_raw_init) as raw_pool:
        list(raw_pool.map(_warm_raw, range(WORKERS)))
        raw_times = []
        for _ in range(2):
            started = time.perf_counter()
            list(raw_pool.map(_raw_row, rows))
            raw_times.append(time.perf_counter() - started)
    with Encoder(WORKERS) as encoder:
        encoder.wait_ready()
        ours_times = []
        for _ in range(2):
            started = time.perf_counter()
            encoded = encoder.encode(data)
            encoded.header.blob_id(BENCH_SUBMITTER)  # the blob id is part of the work
            ours_times.append(time.perf_counter() - started)
    report(
        f"encode+commit+cell proofs of 16 MiB ({len(rows)} rows, {WORKERS} processes) vs raw ckzg",
        min(ours_times), min(raw_times), "s", goal="<= 1.2x",
    )


def _spawn(data_dir: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return start_zg(data_dir, log, "da", *args)


@contextmanager
def _da_network() -> Iterator[tuple[BenchChain, Path, list[subprocess.Popen[bytes]]]]:
    """Anvil with 1 s blocks, 4 ``zg da signer`` processes and a ``zg da disperser``."""
    with bench_chain(block_time_s=DEVNET_BLOCK_TIME_S) as env:
        data_dir = env.workdir / "data"
        data_dir.mkdir()
        (data_dir / "network.json").write_text(json.dumps({"rpc_url": env.anvil.url, "chain_id": env.chain.chain_id}))
        (data_dir / "deployment.json").write_text(json.dumps(env.deployment.to_json()))
        processes = start_da_network(env, data_dir)
        try:
            yield env, data_dir, processes
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)


def bench_certificate() -> None:
    with _da_network() as (env, data_dir, _):
        _measure_certificates(env, data_dir)


def start_da_network(env: BenchChain, data_dir: Path, signers: int = SIGNERS,
                     accounts: Sequence[str] = ()) -> list[subprocess.Popen[bytes]]:
    """``signers`` signers (``accounts[i]`` as ``--account`` when given, else the devnet's) and a
    disperser, each a ``zg da`` process; returns once all signers are in the current quorum."""
    ports = [free_port() for _ in range(signers + 1)]
    processes = []
    for i in range(signers):
        account = ("--account", accounts[i]) if accounts else ()
        processes.append(_spawn(data_dir, env.workdir / f"signer-{i}.log", "signer", "--index", str(i),
                                "--port", str(ports[i]), *account))
    for port in ports[:signers]:
        if not wait_until(lambda port=port: port_in_use(port), 120):
            raise RuntimeError("a signer did not start")
    processes.append(_spawn(data_dir, env.workdir / "disperser.log", "disperser", "--port", str(ports[-1])))
    if not wait_until(lambda: port_in_use(ports[-1]), 60):
        raise RuntimeError("the disperser did not start")
    env.workdir.joinpath("disperser.port").write_text(str(ports[-1]))
    # Signers join the quorum at the next epoch.
    from zgos.da.contracts import DAContracts

    da = DAContracts.from_addresses(env.chain, env.deployment.addresses)
    if not wait_until(lambda: len(da.quorum(da.current_epoch()).members) == signers, 120, 0.2):
        raise RuntimeError(f"the quorum did not reach {signers} signers")
    return processes


def certify(env: BenchChain, data_dir: Path, runs: int = CERT_RUNS) -> tuple[list[float], list[int]]:
    """Seconds from ``DisperseBlob`` to a confirmed certificate, and the certificate
    transaction's gas, for ``runs`` + 1 random ``CERT_BYTES`` blobs one after another (the
    first warms the signers' caches)."""
    times, gas = [], []
    with _disperser_client(env, data_dir) as client:
        for _ in range(runs + 1):
            data = os.urandom(CERT_BYTES)
            started = time.perf_counter()
            request_id = client.disperse(data)
            while (reply := client.status(request_id)).status == disperser_pb2.PROCESSING:
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            if reply.status != disperser_pb2.CONFIRMED:
                raise RuntimeError(f"dispersal failed: {reply.reason}")
            times.append(elapsed)
            gas.append(int(env.chain.w3.eth.get_transaction_receipt(reply.certificate_tx)["gasUsed"]))  # type: ignore[arg-type]
    return times, gas


def _measure_certificates(env: BenchChain, data_dir: Path) -> None:
    times, gas = certify(env, data_dir)
    median = statistics.median(times[1:])
    print(
        f"1 MiB blob to on-chain certificate, {SIGNERS} signers, {DEVNET_BLOCK_TIME_S:g} s blocks: "
        f"median {median:.2f} s over {CERT_RUNS} (all: {', '.join(f'{t:.2f}' for t in times)})  goal <= 3 s",
        flush=True,
    )
    print(f"certificate verification gas (4 signers, incl. 21k base + fee credit): {statistics.median(gas):.0f}", flush=True)
    phases = [line for line in (env.workdir / "disperser.log").read_text().splitlines() if "done at" in line]
    print("last dispersal phases: " + "; ".join(line.split(": ", 1)[-1] for line in phases[-4:]), flush=True)


def _disperser_client(env: BenchChain, data_dir: Path) -> DisperserClient:
    from zgos.runtime.access import TOKEN_FILE, read_token

    target = f"127.0.0.1:{env.workdir.joinpath('disperser.port').read_text()}"
    return DisperserClient(target, token=read_token(data_dir / "da-disperser" / TOKEN_FILE))


def _certify_all(client: DisperserClient, blobs: list[bytes]) -> list[disperser_pb2.BlobStatusReply]:
    """Disperse every blob back-to-back, then wait until each is final; raise if one failed."""
    request_ids = [client.disperse(blob) for blob in blobs]
    replies: dict[bytes, disperser_pb2.BlobStatusReply] = {}
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    while len(replies) < len(request_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(request_ids) - len(replies)} blobs not certified in {STREAM_TIMEOUT_S:g} s")
        for request_id in request_ids:
            if request_id not in replies and (reply := client.status(request_id)).status != disperser_pb2.PROCESSING:
                if reply.status != disperser_pb2.CONFIRMED:
                    raise RuntimeError(f"dispersal failed: {reply.reason}")
                replies[request_id] = reply
        time.sleep(STATUS_POLL_S)  # as often as `DisperserClient.wait` asks
    return [replies[r] for r in request_ids]


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_seconds(roles: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each role's processes."""
    return {role: sum(p.cpu_times().user + p.cpu_times().system for p in processes)
            for role, processes in roles.items()}


def _network_roles(env: BenchChain, processes: list[subprocess.Popen[bytes]]) -> dict[str, list[psutil.Process]]:
    assert env.anvil.process is not None
    disperser = psutil.Process(processes[-1].pid)
    return {"disperser": [disperser], "encoder workers": disperser.children(recursive=True),
            "signers": [psutil.Process(p.pid) for p in processes[:-1]],
            "anvil": [psutil.Process(env.anvil.process.pid)]}


def _measure_stream(env: BenchChain, data_dir: Path, blobs: list[bytes], processes: list[subprocess.Popen[bytes]],
                    ) -> tuple[float, float]:
    """Certified MB/s of ``blobs`` dispersed back-to-back (after a one-row warm-up blob), and
    the CPU seconds all DA processes spent on them."""
    with _disperser_client(env, data_dir) as client:
        _certify_all(client, [os.urandom(BYTES_PER_ROW_PAYLOAD)])  # workers' and signers' setup loading
        roles = _network_roles(env, processes)
        print(f"stream start: {_load()}", flush=True)
        cpu_before = _cpu_seconds(roles)
        started = time.perf_counter()
        replies = _certify_all(client, blobs)
        elapsed = time.perf_counter() - started
        cpu = {role: used - cpu_before[role] for role, used in _cpu_seconds(roles).items()}
    if len({r.certificate_tx for r in replies}) != len(blobs) or len({r.info.blob_header.storage_root for r in replies}) != len(blobs):
        raise RuntimeError("certificates or blob ids are not distinct")
    total = sum(len(b) for b in blobs)
    print(f"stream end: {_load()}; {len(blobs)} blobs, {total / 1e6:.1f} MB certified in {elapsed:.2f} s; CPU s: "
          + ", ".join(f"{role} {used:.1f}" for role, used in cpu.items()), flush=True)
    return total / elapsed / 1e6, sum(cpu.values())


def _measure_raw_cells(blobs: list[bytes]) -> tuple[float, float]:
    """MB/s of raw ``compute_cells_and_kzg_proofs`` over the blobs' rows on ``WORKERS``
    processes, and the CPU seconds they spent."""
    rows = [row for blob in blobs for row in pack_rows(blob)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=context, initializer=_raw_init) as pool:
        list(pool.map(_warm_raw, range(WORKERS)))
        roles = {"raw": [psutil.Process(pid) for pid in pool._processes]}
        print(f"raw start: {_load()}", flush=True)
        cpu_before = _cpu_seconds(roles)["raw"]
        started = time.perf_counter()
        for _ in pool.map(_raw_cells, rows, chunksize=4):
            pass
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(roles)["raw"] - cpu_before
    print(f"raw end: {_load()}; {len(rows)} rows in {elapsed:.2f} s, {cpu:.1f} CPU s", flush=True)
    return sum(len(b) for b in blobs) / elapsed / 1e6, cpu


def bench_stream() -> None:
    """Raw ckzg before and after the stream (the machine is shared: load moves), both reported."""
    blobs = [os.urandom(STREAM_ROWS_PER_BLOB * BYTES_PER_ROW_PAYLOAD) for _ in range(STREAM_BLOBS)]
    raw_before, raw_cpu_before = _measure_raw_cells(blobs)
    with _da_network() as (env, data_dir, processes):
        certified, cpu = _measure_stream(env, data_dir, blobs, processes)
    raw_after, raw_cpu_after = _measure_raw_cells(blobs)
    raw, raw_cpu = (raw_before + raw_after) / 2, (raw_cpu_before + raw_cpu_after) / 2
    size = STREAM_ROWS_PER_BLOB * BYTES_PER_ROW_PAYLOAD
    print(
        f"sustained DA, {STREAM_BLOBS} x {size / 1e6:.2f} MB blobs to on-chain certificates ({SIGNERS} signers, "
        f"1 s blocks): ours {certified:.3f} MB/s, raw ckzg cells+proofs of the same rows on {WORKERS} processes "
        f"{raw:.3f} MB/s (before {raw_before:.3f}, after {raw_after:.3f}), ratio {certified / raw:.2f}x  goal >= 0.8x",
        flush=True,
    )
    print(f"CPU seconds for the same bytes: ours {cpu:.1f} (all DA processes and anvil), raw {raw_cpu:.1f}: "
          f"CPU-efficiency ratio {raw_cpu / cpu:.2f}x", flush=True)


def main() -> None:
    which = os.environ.get("ZGOS_BENCH_DA")
    if which == "stream":
        bench_stream()
        return
    if which != "certificate":
        bench_encoding()
    bench_certificate()
    bench_stream()


if __name__ == "__main__":
    main()
