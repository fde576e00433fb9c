"""`zg devnet` in a temporary data dir: up, status, stop/start, stale pids, ports, down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.clirunner import devnet_chain_port, zg
from zgos.chain.client import Chain
from zgos.devnet.process import PidFile, is_alive
from zgos.netutil import port_in_use, wait_until


@pytest.fixture
def devnet_root(tmp_path: Path):
    root = tmp_path / "devnet"
    yield root
    zg(root, "devnet", "down")


def up(root: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return zg(root, "devnet", "up", "--detach", "--chain-port", str(port), "--block-time", "0.2", *extra)


def test_devnet_up_status_stop_start_down(devnet_root: Path) -> None:
    port = devnet_chain_port()
    result = up(devnet_root, port)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "chain" in result.stdout and "healthy" in result.stdout
    deployment = json.loads((devnet_root / "deployment.json").read_text())
    assert "NodeRegistry" in deployment["contracts"]

    status = zg(devnet_root, "devnet", "status")
    assert "healthy" in status.stdout
    assert zg(devnet_root, "chain", "status").returncode == 0, "zg finds the devnet from its data dir"

    pid = PidFile(devnet_root / "pids" / "chain.pid").read_live_pid()
    assert pid is not None and is_alive(pid)
    assert "stopped" in zg(devnet_root, "devnet", "stop", "chain").stdout
    assert not is_alive(pid) and not port_in_use(port)
    assert zg(devnet_root, "devnet", "start", "chain").returncode == 0
    assert Chain(f"http://127.0.0.1:{port}").block_number() > 0

    again = up(devnet_root, port)
    assert again.returncode == 0, "up is idempotent while running"
    down = zg(devnet_root, "devnet", "down")
    assert "chain" in down.stdout
    assert not port_in_use(port)
    assert "stopped" in zg(devnet_root, "devnet", "status").stdout


def test_stale_pid_file_is_detected_and_replaced(devnet_root: Path) -> None:
    pids = devnet_root / "pids"
    pids.mkdir(parents=True)
    # A pid that runs but is another process (wrong start time) must not be trusted or killed.
    (pids / "chain.pid").write_text(json.dumps({"pid": os.getpid(), "start": 1}))
    assert PidFile(pids / "chain.pid").read_live_pid() is None
    assert not (pids / "chain.pid").exists()
    (pids / "chain.pid").write_text(json.dumps({"pid": 999_999_999, "start": 5}))
    result = up(devnet_root, devnet_chain_port())
    assert result.returncode == 0, result.stderr
    assert is_alive(os.getpid())


def test_port_in_use_is_a_clear_error(devnet_root: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = up(devnet_root, port)
    assert result.returncode == 1
    assert "already in use" in result.stderr and "Traceback" not in result.stderr


def test_foreground_up_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    root, port = tmp_path / "fg", devnet_chain_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(root), "devnet", "up",
         "--chain-port", str(port), "--block-time", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # see the summary line as soon as it is printed
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        # every service group must be up (the model server takes seconds), not just the chain
        assert wait_until(lambda: any("Ctrl-C stops everything" in line for line in lines), 300)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(10)
        output = "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "devnet stopped" in output
    assert not port_in_use(port)
    assert not list((root / "pids").glob("*.pid"))


def test_status_without_devnet_says_how_to_start(tmp_path: Path) -> None:
    result = zg(tmp_path / "none", "devnet", "status")
    assert result.returncode == 1 and "zg devnet up" in result.stderr


def test_devnet_reset_deletes_the_data_dir(devnet_root: Path) -> None:
    assert up(devnet_root, devnet_chain_port()).returncode == 0
    assert zg(devnet_root, "devnet", "reset", "--yes").returncode == 0
    assert not devnet_root.exists()
