"""`zg devnet up` gives a working compute network: `zg compute chat "hello"` out of the box
(on a devnet of the chain and the compute group: model server and provider)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.clirunner import devnet_chain_port, devnet_up, zg


@pytest.fixture
def devnet_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "devnet"
    yield root
    zg(root, "devnet", "down")


@pytest.mark.slow
def test_devnet_compute_chat_works_out_of_the_box(devnet_root: Path) -> None:
    port = devnet_chain_port()
    started = devnet_up(devnet_root, port, "--only", "compute")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "provider-0" in started.stdout and "model" in started.stdout
    chat = zg(devnet_root, "compute", "chat", "hello", "--max-tokens", "4")
    assert chat.returncode == 0, chat.stderr
    assert "verified: gemma-3-270m" in chat.stderr and "Traceback" not in chat.stderr
    response_id = re.search(r"id\s+(0x[0-9a-f]{64})", chat.stderr)
    assert response_id, chat.stderr
    verified = zg(devnet_root, "compute", "verify", response_id.group(1))
    assert verified.returncode == 0 and '"signature_valid": true' in verified.stdout, verified.stdout
    # no --admin-url: the data dir names its devnet's admin API (this devnet is not on 3081)
    status = zg(devnet_root, "compute", "provider", "status")
    assert status.returncode == 0 and re.search(r"requests\s+│\s+1", status.stdout), status.stdout
    settle = zg(devnet_root, "compute", "provider", "settle")
    assert settle.returncode == 0 and "settled 1 users" in settle.stdout, settle.stdout + settle.stderr
    refused = zg(devnet_root, "compute", "fund", "1", "2", "3")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
