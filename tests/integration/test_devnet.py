"""`zg devnet` in a temporary data dir: up, status, stop/start, stale pids, ports, down.

The lifecycle claims are about the orchestrator, so they run on the smallest devnet that shows
them (``--only``); only the foreground Ctrl-C test brings up every service group."""

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
from typing import Any

import pytest

from tests.integration.clirunner import devnet_chain_port, devnet_up, zg
from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.devnet.orchestrator import Devnet
from zgos.devnet.services import all_services
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import (
    READY_TIMEOUT_ENV,
    free_port,
    port_in_use,
    ready_timeout_s,
    wait_until,
)
from zgos.runtime.process import PidFile, is_alive
from zgos.runtime.service import DevnetOptions, Service


@pytest.fixture
def devnet_root(tmp_path: Path):
    root = tmp_path / "devnet"
    yield root
    zg(root, "devnet", "down")


def up(root: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    """A chain-only devnet (the lifecycle is the orchestrator's, the same for every service)."""
    return devnet_up(root, port, "--only", "chain", *extra)


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
    registry = deployment["contracts"]["NodeRegistry"]["address"]
    height = Chain(f"http://127.0.0.1:{port}").block_number()
    assert "stopped" in zg(devnet_root, "devnet", "stop", "chain").stdout
    assert not is_alive(pid) and not port_in_use(port)
    assert zg(devnet_root, "devnet", "start", "chain").returncode == 0
    restarted = Chain(f"http://127.0.0.1:{port}")
    assert restarted.block_number() >= height, "the chain resumes from its saved state"
    assert restarted.w3.eth.get_code(registry), "the deployed contracts survive the restart"

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
    assert result.returncode == 0, result.stderr + result.stdout
    assert is_alive(os.getpid())


def test_port_in_use_is_a_clear_error(devnet_root: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = up(devnet_root, port)
    assert result.returncode == 1
    assert "already in use" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
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
        # The one test of the whole devnet: every service group must come up healthy (the
        # summary line is printed only then), and Ctrl-C must stop all of them. Each service
        # has the readiness deadline; a start-up failure ends `up` with that service's log.
        every_service = len(all_services(DevnetOptions(chain_port=port)))
        assert wait_until(lambda: any("Ctrl-C stops everything" in line for line in lines)
                          or process.poll() is not None, every_service * ready_timeout_s()), "".join(lines)
        assert process.poll() is None, "".join(lines)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(10)
        output = "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            zg(root, "devnet", "down")  # the services live in their own sessions
    assert process.returncode == 0, output
    assert "devnet stopped" in output
    assert not port_in_use(port)
    assert not list((root / "pids").glob("*.pid"))


def test_status_without_devnet_says_how_to_start(tmp_path: Path) -> None:
    result = zg(tmp_path / "none", "devnet", "status")
    assert result.returncode == 1 and "zg devnet up" in result.stderr


def test_devnet_reset_deletes_the_data_dir(devnet_root: Path) -> None:
    result = up(devnet_root, devnet_chain_port())
    assert result.returncode == 0, result.stderr + result.stdout
    assert zg(devnet_root, "devnet", "reset", "--yes").returncode == 0
    assert not devnet_root.exists()


def test_devnet_up_only_starts_the_named_groups_and_what_they_need(devnet_root: Path) -> None:
    port = devnet_chain_port()
    result = devnet_up(devnet_root, port, "--only", "indexer")
    assert result.returncode == 0, result.stderr + result.stdout
    status = zg(devnet_root, "devnet", "status").stdout
    listed = [line.split()[1] for line in status.splitlines() if line.startswith("│")]
    assert listed == ["chain", "storage-0", "indexer"], status
    assert status.count("healthy") == 3, status
    saved = json.loads((devnet_root / "network.json").read_text())["options"]
    assert saved["only"] == ["indexer"]

    # a second node given the running one's name (so its data dir) stops at once, saying why
    node_pid = PidFile(devnet_root / "pids" / "storage-0.pid").read_live_pid()
    twin = zg(devnet_root, "storage", "node", "--name", "storage-0", "--port", str(free_port()))
    assert twin.returncode == 1 and "Traceback" not in twin.stderr, twin.stdout + twin.stderr
    assert f"in use by another storage node (pid {node_pid})" in twin.stdout + twin.stderr

    # stop/start act on what was started, and `start` restarts the saved way
    assert "stopped" in zg(devnet_root, "devnet", "stop", "storage-0").stdout
    assert zg(devnet_root, "devnet", "start", "storage-0").returncode == 0
    missing = zg(devnet_root, "devnet", "start", "model")
    assert missing.returncode == 1 and "started with --only indexer" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr

    down = zg(devnet_root, "devnet", "down")
    assert down.stdout.split(":", 1)[1].split() == ["indexer,", "storage-0,", "chain"], down.stdout
    assert not list((devnet_root / "pids").glob("*.pid"))


def test_an_unknown_service_group_is_a_clear_error(tmp_path: Path) -> None:
    result = zg(tmp_path / "devnet", "devnet", "up", "--only", "chain,nonsense")
    assert result.returncode == 1 and "no devnet service group named 'nonsense'" in result.stderr
    assert "storage" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "devnet" / "pids").exists(), "nothing started"


def _service(argv: list[str]) -> Service:
    return Service(name="flaky", url="-", argv=lambda ctx: argv, ready=lambda ctx: False)


def test_a_service_that_exits_during_start_up_fails_at_once_with_the_end_of_its_log(tmp_path: Path) -> None:
    devnet = Devnet(DataDir(tmp_path / "devnet"), DevnetOptions(chain_port=devnet_chain_port()))
    script = "import sys; print('loading'); print('bad config: no such model', file=sys.stderr); sys.exit(3)"
    started = time.monotonic()
    with pytest.raises(ZgError) as raised:
        devnet.start(_service([sys.executable, "-c", script]))
    assert time.monotonic() - started < ready_timeout_s() / 2, "did not wait out the deadline"
    assert "flaky exited during start-up" in raised.value.message
    assert raised.value.hint is not None and "bad config: no such model" in raised.value.hint
    assert not (tmp_path / "devnet" / "pids" / "flaky.pid").exists()


def test_a_service_that_misses_the_readiness_deadline_is_stopped_and_its_log_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(READY_TIMEOUT_ENV, "1.5")
    devnet = Devnet(DataDir(tmp_path / "devnet"), DevnetOptions(chain_port=devnet_chain_port()))
    script = "import time; print('waiting for the model download', flush=True); time.sleep(60)"
    with pytest.raises(ZgError) as raised:
        devnet.start(_service([sys.executable, "-c", script]))
    assert "flaky did not become healthy in 1.5 s" in raised.value.message
    assert raised.value.hint is not None and "waiting for the model download" in raised.value.hint
    assert not (tmp_path / "devnet" / "pids" / "flaky.pid").exists()


def test_a_failure_in_another_group_stops_a_service_still_starting_and_starts_no_more(tmp_path: Path) -> None:
    devnet = Devnet(DataDir(tmp_path / "devnet"), DevnetOptions(chain_port=devnet_chain_port()))
    pid_path = tmp_path / "slow.pid"
    script = f"import os, pathlib, time; pathlib.Path({str(pid_path)!r}).write_text(str(os.getpid())); time.sleep(60)"
    stop = threading.Event()  # set by `up` when a service of another group fails
    threading.Thread(target=lambda: wait_until(pid_path.exists, ready_timeout_s()) and stop.set(), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(ZgError, match="flaky stopped while starting: another service failed"):
        devnet.start(_service([sys.executable, "-c", script]), stop)
    assert time.monotonic() - started < ready_timeout_s() / 2, "did not wait out the deadline"
    assert not is_alive(int(pid_path.read_text())), "stopped"
    assert not (tmp_path / "devnet" / "pids" / "flaky.pid").exists()
    with pytest.raises(ZgError, match="flaky not started"):
        devnet.start(_service([sys.executable, "-c", script]), stop)
    assert not (tmp_path / "devnet" / "pids" / "flaky.pid").exists()


def test_prepare_hooks_run_one_at_a_time_and_no_other_service_waits_on_them(tmp_path: Path) -> None:
    devnet = Devnet(DataDir(tmp_path / "devnet"), DevnetOptions(chain_port=devnet_chain_port()))
    hooks: list[tuple[float, float]] = []  # (began, ended) of each prepare hook

    def fund_an_account(ctx: object) -> None:  # as a hook sending a transaction from a shared account
        began = time.monotonic()
        time.sleep(2.0)
        hooks.append((began, time.monotonic()))

    def service(name: str, prepare: Any = None) -> Service:
        return Service(name=name, url="-", argv=lambda ctx: [sys.executable, "-c", "import time; time.sleep(60)"],
                       ready=lambda ctx: True, prepare=prepare)

    groups = [threading.Thread(target=devnet.start, args=(service(f"hooked-{i}", fund_an_account),)) for i in range(2)]
    try:
        for group in groups:
            group.start()
        time.sleep(0.2)
        started = time.monotonic()
        devnet.start(service("plain"))
        plain_took = time.monotonic() - started
        for group in groups:
            group.join()
    finally:
        devnet.down()
    (_, first_ended), (second_began, _) = sorted(hooks)
    assert second_began >= first_ended, "two prepare hooks overlapped"
    assert plain_took < 1.0, f"a service without a hook waited {plain_took:.1f} s on one"
