"""Encrypted vs plaintext upload (issue 15, Performance: "an encrypted upload runs at >= 0.9x the
speed of a plaintext upload"), in one run against one local storage node:

* each round uploads a fresh plaintext file and a fresh file encrypted (v1, the same size),
  alternating which goes first; the encrypted upload includes staging the ciphertext (encrypt as a
  stream + one extra write), hashing, the Flow submission with its key check, sending and
  finalizing; median throughput of each over ``ZGOS_BENCH_ENC_ROUNDS`` rounds (goal >= 0.9x);
* staging alone (AES-256-CTR + write) vs a plain copy + fsync of the same file, for the cost's breakdown.

Size: ``ZGOS_BENCH_ENC_MIB`` (default 64).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_storage import MIB, _data_dir, _file, _node
from bench.harness import bench_chain, report
from zgos.chain.accounts import devnet_role
from zgos.runtime.netutil import free_port
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import Recipient, encrypt_file, upload_encrypted

ENC_MIB = int(os.environ.get("ZGOS_BENCH_ENC_MIB", "64"))
ENC_ROUNDS = int(os.environ.get("ZGOS_BENCH_ENC_ROUNDS", "3"))


def _seconds(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def _copy_synced(source: Path, target: Path) -> None:
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 4 * MIB)
        writer.flush()
        os.fsync(writer.fileno())


def bench_staging(work: Path) -> None:
    path = _file(work, "stage.bin", ENC_MIB)
    recipient = Recipient(symmetric_key=secrets.token_bytes(32))
    copy = min(_seconds(lambda: _copy_synced(path, work / "copy.bin")) for _ in range(3))
    sealed = min(_seconds(lambda: encrypt_file(path, work / "sealed.bin", recipient.seal())) for _ in range(3))
    size_mb = ENC_MIB * MIB / 1e6
    report(f"staging {ENC_MIB} MiB (encrypt + write + fsync) vs a plain copy + fsync", size_mb / sealed, size_mb / copy, "MB/s")
    for name in ("stage.bin", "copy.bin", "sealed.bin"):
        (work / name).unlink()


def bench_upload(work: Path) -> None:
    size_mb = ENC_MIB * MIB / 1e6
    with bench_chain() as bc:
        data_dir = _data_dir(bc, work / "data")
        port = free_port()
        node = _node(data_dir, "storage-0", port, work / "node.log")
        try:
            with StorageClient([f"http://127.0.0.1:{port}"], bc.chain, bc.deployment.address("Flow"),
                               devnet_role("user")) as client:
                plain_rates, sealed_rates = [], []
                for round_ in range(ENC_ROUNDS):
                    plain, secret = _file(work, f"p{round_}.bin", ENC_MIB), _file(work, f"s{round_}.bin", ENC_MIB)
                    recipient = Recipient(symmetric_key=secrets.token_bytes(32))
                    runs = [(plain_rates, lambda p=plain: client.upload(p)),  # type: ignore[misc]
                            (sealed_rates, lambda s=secret, r=recipient: upload_encrypted(  # type: ignore[misc]
                                client, s, r, work / "staged"))]
                    for rates, run in runs if round_ % 2 == 0 else runs[::-1]:
                        rates.append(size_mb / _seconds(run))
                    plain.unlink()
                    secret.unlink()
            report(f"encrypted upload {ENC_MIB} MiB (v1, staged) vs plaintext upload, median of {ENC_ROUNDS}",
                   statistics.median(sealed_rates), statistics.median(plain_rates), "MB/s", ">= 0.9x")
        finally:
            node.kill()


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="zgos-bench-enc-") as tmp:
        bench_staging(Path(tmp))
        bench_upload(Path(tmp))


if __name__ == "__main__":
    main()
