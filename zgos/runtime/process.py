"""Child processes of services and of the devnet: spawn one in its own process group with its
log file, tell whether it still runs, stop it politely then by force, and quote its log.

A pid file holds the pid and the process start time (from /proc), so a pid reused by an
unrelated process after a crash or reboot is recognised as stale rather than killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0
POLL_S = 0.05
LOG_TAIL_LINES = 20
LOG_TAIL_MAX_BYTES = 64 * 1024
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot, or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # zombie: exited, not yet reaped
        return None
    return int(fields[19])


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "start": process_start_time(pid)}))
        tmp.replace(self.path)

    def read_live_pid(self) -> int | None:
        """The recorded pid if that very process still runs; remove a stale file and return None."""
        try:
            data = json.loads(self.path.read_text())
            pid, start = int(data["pid"]), data["start"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.path.unlink(missing_ok=True)
            return None
        if start is None or process_start_time(pid) != start:
            self.path.unlink(missing_ok=True)
            return None
        return pid

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def spawn(argv: list[str], log_path: Path | None, env: dict[str, str] | None = None, *,
          die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session and process group (so Ctrl-C in the shell does not hit
    it twice, and ``terminate`` reaches its own children too), stdin closed, stdout and stderr
    appended to ``log_path`` (None: discarded), ``env`` added to this process's environment.
    ``die_with_parent``: the kernel SIGKILLs the child when the thread that spawned it dies, so
    a parent killed with ``kill -9`` leaves no orphan (Linux ``PR_SET_PDEATHSIG``)."""
    if log_path is None:
        return _popen(argv, subprocess.DEVNULL, env, die_with_parent)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return _popen(argv, log.fileno(), env, die_with_parent)


def _kill_me_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _popen(argv: list[str], out: int, env: dict[str, str] | None, die_with_parent: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **(env or {})},
                            preexec_fn=_kill_me_with_parent if die_with_parent else None)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a service log (read from its last 64 KiB), so an error about
    a service that failed to start says why; a note instead when there is no log."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_MAX_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    return process_start_time(pid) is not None


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is this process's exited child (no zombie is left)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads (to ``pid`` alone if it leads none we
    may signal); a process already gone is no error."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    """Wait up to ``timeout_s`` for ``pids`` to exit (reaping our own children); those still alive."""
    deadline = time.monotonic() + timeout_s
    while True:
        for pid in pids:
            _reap(pid)
        pids = {pid for pid in pids if is_alive(pid)}
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(POLL_S)


def terminate_all(pids: Iterable[int], timeout_s: float = STOP_TIMEOUT_S) -> set[int]:
    """SIGTERM the process group of every pid at once, SIGKILL the groups of those still alive
    after ``timeout_s``; return the pids that had to be killed."""
    running = {pid for pid in pids if is_alive(pid)}
    for pid in running:
        _signal_group(pid, signal.SIGTERM)
    forced = _wait_gone(running, timeout_s)
    for pid in forced:
        _signal_group(pid, signal.SIGKILL)
    _wait_gone(forced, KILL_TIMEOUT_S)
    return forced


def terminate(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL after ``timeout_s``; True if it was forced."""
    return bool(terminate_all([pid], timeout_s))


def kill(pid: int) -> None:
    """SIGKILL the process group of ``pid`` at once, as a crash would, and wait until it is gone."""
    _signal_group(pid, signal.SIGKILL)
    _wait_gone({pid}, KILL_TIMEOUT_S)
