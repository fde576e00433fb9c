"""Waiting for a server a test starts: on its own health signal, within the one readiness
deadline (``zgos.runtime.netutil.ready_timeout_s``, ``$ZGOS_READY_TIMEOUT_S``), failing at once if
its process exits; a failure shows the end of the server's log, so it explains itself."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zgos.runtime.netutil import http_ok, ready_timeout_s, wait_ready
from zgos.runtime.process import log_tail

LOG_TAIL_LINES = 40
STOP_TIMEOUT_S = 30.0


def await_ready(ready: Callable[[], bool], what: str, log: Path | None = None,
                process: subprocess.Popen[Any] | None = None) -> None:
    """Return once ``ready()`` holds; else fail the test saying why, with ``log``'s last lines."""
    def alive() -> bool:
        return process is None or process.poll() is None

    if wait_ready(ready, alive):
        return
    why = f"did not become ready in {ready_timeout_s():g} s" if alive() else "exited during start-up"
    tail = f"\n--- the end of {log} ---\n{log_tail(log, LOG_TAIL_LINES)}" if log is not None else ""
    pytest.fail(f"{what} {why}{tail}", pytrace=False)


def await_http(url: str, what: str, log: Path | None = None,
               process: subprocess.Popen[Any] | None = None) -> None:
    """:func:`await_ready` on ``url`` answering below 500."""
    await_ready(lambda: http_ok(url), what, log, process)


def stop_process(process: subprocess.Popen[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM ``process``; SIGKILL it if it has not exited within ``timeout_s`` (a process busy
    in a long computation may not get to its signal handler in time)."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)
