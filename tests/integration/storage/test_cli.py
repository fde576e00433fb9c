"""`zg storage` as a user runs it, against a devnet started with `zg devnet up --only kv` (the
storage nodes and the KV node that reads from them: the devnet's `demo` stream works at once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.clirunner import devnet_chain_port, devnet_up, zg


@pytest.fixture
def devnet_root(tmp_path: Path):
    root = tmp_path / "devnet"
    yield root
    zg(root, "devnet", "down")


@pytest.mark.slow
def test_devnet_storage_node_serves_cli_upload_download_and_info(devnet_root: Path, tmp_path: Path) -> None:
    up = devnet_up(devnet_root, devnet_chain_port(), "--only", "kv")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "storage-0" in up.stdout and "kv-0" in up.stdout
    kv_set = zg(devnet_root, "kv", "set", "demo", "k", "v")
    assert kv_set.returncode == 0 and "Commit" in kv_set.stdout, kv_set.stdout + kv_set.stderr
    assert zg(devnet_root, "kv", "get", "demo", "k").stdout == "v\n"
    path = tmp_path / "hello.bin"
    path.write_bytes(os.urandom(600_000))
    upload = zg(devnet_root, "storage", "upload", str(path))
    assert upload.returncode == 0, upload.stdout + upload.stderr
    root = next(line.split()[1] for line in upload.stdout.splitlines() if line.startswith("root"))
    info = zg(devnet_root, "storage", "info", root)
    assert info.returncode == 0 and "finalized  True" in info.stdout, info.stdout + info.stderr
    out = tmp_path / "out.bin"
    download = zg(devnet_root, "storage", "download", root, str(out))
    assert download.returncode == 0, download.stderr
    assert out.read_bytes() == path.read_bytes()
    again = zg(devnet_root, "storage", "upload", str(path))
    assert "already on chain" in again.stdout


def test_cli_errors_are_one_line(devnet_dir, tmp_path: Path) -> None:
    bad_root = zg(devnet_dir.root, "storage", "download", "0x1234", str(tmp_path / "x"), "--node", "http://127.0.0.1:9")
    assert bad_root.returncode == 1 and "not a data root" in bad_root.stderr
    assert "Traceback" not in bad_root.stderr
    missing = zg(devnet_dir.root, "storage", "upload", str(tmp_path / "nope"), "--node", "http://127.0.0.1:9")
    assert missing.returncode == 1 and "no such file" in missing.stderr
    unknown = zg(devnet_dir.root, "storage", "info", "0x" + "ab" * 32, "--node", "http://127.0.0.1:9")
    assert unknown.returncode == 1 and "no node knows" in unknown.stderr
