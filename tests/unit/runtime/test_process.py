"""The one spawner/terminator (``zgos.runtime.process``) on real child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from zgos.runtime.process import is_alive, kill, log_tail, spawn, terminate, terminate_all

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def _grandchild_pid(log: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = log.read_text().split() if log.exists() else []
        if lines:
            return int(lines[0])
        time.sleep(0.02)
    raise AssertionError(f"the child never wrote its child's pid: {log_tail(log)}")


def _wait_for(text: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, log_tail(log)
        time.sleep(0.02)


def test_spawn_appends_stdout_and_stderr_to_the_log_and_closes_stdin(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    log.parent.mkdir()
    log.write_text("earlier run\n")
    child = spawn([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); "
                   "print(repr(sys.stdin.read()))"], log)
    assert child.wait(30) == 0
    assert log.read_text().splitlines() == ["earlier run", "out", "err", "''"]


def test_spawn_passes_the_extra_environment_and_runs_in_its_own_process_group(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = spawn([sys.executable, "-c", "import os; print(os.environ['ZGOS_TEST_MARK'], os.getpgid(0) == os.getpid())"],
                  log, env={"ZGOS_TEST_MARK": "marked"})
    assert child.wait(30) == 0
    assert log.read_text().split() == ["marked", "True"]


def test_terminate_stops_the_child_and_its_own_children(tmp_path: Path) -> None:
    log = tmp_path / "tree.log"
    child = spawn(["sh", "-c", "sleep 60 & echo $!; wait"], log)
    grandchild = _grandchild_pid(log)
    assert is_alive(child.pid) and is_alive(grandchild)
    assert terminate(child.pid, timeout_s=10) is False, "SIGTERM was enough"
    assert not is_alive(child.pid)
    deadline = time.monotonic() + 5
    while is_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not is_alive(grandchild), "the grandchild outlived its process group's SIGTERM"


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    child = spawn([sys.executable, "-c", IGNORES_SIGTERM], log)
    _wait_for("up", log)
    started = time.monotonic()
    assert terminate(child.pid, timeout_s=0.5) is True
    assert 0.5 <= time.monotonic() - started < 5.0
    assert not is_alive(child.pid)


def test_terminate_all_stops_several_children_in_one_timeout(tmp_path: Path) -> None:
    children = [spawn([sys.executable, "-c", IGNORES_SIGTERM], tmp_path / f"{i}.log") for i in range(3)]
    for i in range(3):
        _wait_for("up", tmp_path / f"{i}.log")
    started = time.monotonic()
    forced = terminate_all([child.pid for child in children], timeout_s=0.5)
    assert forced == {child.pid for child in children}
    assert time.monotonic() - started < 0.5 * 3, "the children were waited for one after another"
    assert not any(is_alive(child.pid) for child in children)


def test_terminating_a_process_that_is_gone_is_no_error(tmp_path: Path) -> None:
    child = spawn([sys.executable, "-c", "pass"], tmp_path / "quick.log")
    child.wait(30)
    assert terminate(child.pid) is False
    kill(child.pid)


def test_kill_stops_at_once_even_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    child = spawn([sys.executable, "-c", IGNORES_SIGTERM], log)
    _wait_for("up", log)
    started = time.monotonic()
    kill(child.pid)
    assert time.monotonic() - started < 2.0
    assert not is_alive(child.pid)


def test_spawn_without_a_log_discards_the_output(tmp_path: Path) -> None:
    child = spawn([sys.executable, "-c", "print('nowhere')"], None)
    assert child.wait(30) == 0
    assert list(tmp_path.iterdir()) == []


def test_the_log_tail_is_the_last_lines_or_a_note(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    assert log_tail(log) == f"(no log at {log})"
    log.write_text("")
    assert log_tail(log) == f"({log} is empty)"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
