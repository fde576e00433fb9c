"""DA benchmarks.

1. Encode + commit + cell proofs of a 16 MiB blob with ``Encoder`` (2 processes) vs the same
   raw ckzg calls (``blob_to_kzg_commitment`` + ``compute_cells_and_kzg_proofs``) on the same
   field elements over an identical 2-process pool. Goal: ours / raw <= 1.2.
2. A 1 MiB blob from ``DisperseBlob`` to an on-chain certificate with 4 signers, each service
   its own ``zg da`` process against anvil with the devnet's 1 s blocks. Goal <= 3 s.
3. Gas of ``DAEntrance.submitCertificate`` (aggregate of 4 keys, hash-to-G2, pairing, fees).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import ckzg

from bench.harness import BenchChain, bench_chain, report, start_zg
from zgos.da.client import DisperserClient
from zgos.da.proto import disperser_pb2
from zgos.da.spec import kzg
from zgos.da.spec.blob import pack_rows
from zgos.da.spec.encoding import Encoder
from zgos.runtime.netutil import free_port, port_in_use, wait_until

ENCODE_BYTES = 16 * 2**20
CERT_BYTES = 2**20
CERT_RUNS = 3
WORKERS = 2
SIGNERS = 4
BENCH_SUBMITTER = "0x" + "11" * 20  # any address: the id hashes it like the contract does
DEVNET_BLOCK_TIME_S = 1.0

_setup: Any = None


def _raw_init() -> None:
    global _setup
    _setup = ckzg.load_trusted_setup(str(kzg.TRUSTED_SETUP_PATH), kzg.PROVER_PRECOMPUTE)


def _raw_row(row: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
    commitment = ckzg.blob_to_kzg_commitment(row, _setup)
    cells, proofs = ckzg.compute_cells_and_kzg_proofs(row, _setup)
    return commitment, cells, proofs


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


def bench_certificate() -> None:
    with bench_chain(block_time_s=DEVNET_BLOCK_TIME_S) as env:
        data_dir = env.workdir / "data"
        data_dir.mkdir()
        (data_dir / "network.json").write_text(json.dumps({"rpc_url": env.anvil.url, "chain_id": env.chain.chain_id}))
        (data_dir / "deployment.json").write_text(json.dumps(env.deployment.to_json()))
        processes = start_da_network(env, data_dir)
        try:
            _measure_certificates(env, data_dir)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)


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
    target = f"127.0.0.1:{env.workdir.joinpath('disperser.port').read_text()}"
    times, gas = [], []
    from zgos.runtime.access import TOKEN_FILE, read_token

    token = read_token(data_dir / "da-disperser" / TOKEN_FILE)
    with DisperserClient(target, token=token) as client:
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


def main() -> None:
    if os.environ.get("ZGOS_BENCH_DA") != "certificate":
        bench_encoding()
    bench_certificate()


if __name__ == "__main__":
    main()
