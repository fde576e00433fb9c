"""`zg da` against a real `zg devnet up --only da`: the chain, 4 signer processes and the disperser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.clirunner import devnet_chain_port, devnet_up, zg
from zgos.chain.client import Chain
from zgos.chain.deploy import load_deployment
from zgos.da.contracts import DAContracts
from zgos.runtime.netutil import free_port, wait_until


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root, port = tmp_path / "devnet", devnet_chain_port()
    try:
        result = devnet_up(root, port, "--only", "da")
        assert result.returncode == 0, result.stdout + result.stderr
        yield root, port
    finally:
        zg(root, "devnet", "down")


@pytest.mark.slow
def test_devnet_starts_four_signers_and_a_disperser_and_the_cli_puts_gets_and_samples(
    devnet: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = devnet
    status = zg(root, "devnet", "status").stdout
    for name in ("da-signer-0", "da-signer-1", "da-signer-2", "da-signer-3", "da-disperser"):
        assert re.search(rf"{name}\s.*healthy", status), status
    chain = Chain(f"http://127.0.0.1:{port}")
    da = DAContracts.from_addresses(chain, load_deployment(root / "deployment.json").addresses)
    assert wait_until(lambda: len(da.quorum(da.current_epoch()).members) == 4, 30, 0.2)
    twin = zg(root, "da", "signer", "--index", "0", "--port", str(free_port()))  # signer 0's state dir, in use
    assert twin.returncode == 1 and "Traceback" not in twin.stderr, twin.stdout + twin.stderr
    assert "in use by another DA signer (pid" in twin.stdout + twin.stderr

    disperser = f"127.0.0.1:{port + 204}"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 700)
    put = zg(root, "da", "put", str(blob))  # this devnet's disperser (not the default port's), from the data dir
    assert put.returncode == 0, put.stderr
    blob_id = re.search(r"blob (0x[0-9a-f]{64}) (CONFIRMED|FINALIZED)", put.stdout).group(1)  # type: ignore[union-attr]
    request_id = put.stdout.split()[1]
    assert "certified by 4 of 4" in zg(root, "da", "status", request_id).stdout

    out = tmp_path / "out.bin"
    get = zg(root, "da", "get", blob_id, str(out))
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == blob.read_bytes()
    sample = zg(root, "da", "sample", blob_id, "--samples", "20")
    assert sample.returncode == 0 and sample.stdout.startswith("AVAILABLE: 20/20"), sample.stderr

    assert zg(root, "devnet", "stop", "da-signer-3").returncode == 0
    withheld = zg(root, "da", "sample", blob_id, "--samples", "64")
    assert withheld.returncode == 1 and "Traceback" not in withheld.stderr
    assert "FAILED signer" in withheld.stderr and "NOT AVAILABLE" in withheld.stderr

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    bad = zg(root, "da", "put", str(empty), "--disperser", disperser)
    assert bad.returncode == 1 and "at least 1 byte" in bad.stderr and "Traceback" not in bad.stderr
    bad_id = zg(root, "da", "get", "0x1234", str(out))
    assert bad_id.returncode == 1 and bad_id.stderr.startswith("error: bad blob id")
