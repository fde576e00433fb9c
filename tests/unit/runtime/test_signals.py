"""Serve until signalled (``zgos.runtime.signals``): a real process waits, gets SIGINT or SIGTERM,
and returns to its own clean-up with exit code 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from zgos.runtime.signals import stop_on_signal

WAITER = """
import signal, sys
from zgos.runtime.signals import wait_for_signal
before = signal.getsignal(signal.SIGTERM)
wait_for_signal(ready=lambda: print("waiting", flush=True))
print("cleaned up", signal.getsignal(signal.SIGTERM) is before, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_service_waiting_for_a_signal_stops_cleanly_on_sigint_and_sigterm(sig: signal.Signals) -> None:
    process = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "waiting"
        process.send_signal(sig)
        out, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, "the signal ended the process instead of the wait"
    assert out.strip() == "cleaned up True", "the previous handler was not restored"


def test_stop_on_signal_calls_the_stop_and_restores_the_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stops: list[str] = []
    with stop_on_signal(lambda: stops.append("stop")):
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
    assert stops == ["stop", "stop"]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def embedded() -> None:
        with stop_on_signal(lambda: None):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=embedded)
    thread.start()
    thread.join(10)
    assert seen == [before]


def test_the_wait_ends_within_a_second_of_the_signal() -> None:
    process = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    finally:
        process.kill()
    assert time.monotonic() - started < 1.0
