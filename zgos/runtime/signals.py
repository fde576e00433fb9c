"""Until signalled: how every service process (HTTP, gRPC, worker loop, the foreground devnet)
waits for SIGINT or SIGTERM and then stops cleanly, returning to its own clean-up instead of
dying mid-way. Light on imports, so a command that only waits stays quick to start."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WAIT_POLL_S = 0.2


@contextmanager
def stop_on_signal(on_stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``on_stop`` (which must only ask the service to
    stop, e.g. set a flag, and return) instead of ending the process; the previous handlers are
    restored on the way out. Outside the main thread (tests, embedded services) Python allows
    no handler: nothing is installed and the caller stops the service itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait_for_signal(poll_s: float = WAIT_POLL_S, ready: Callable[[], None] = lambda: None) -> None:
    """Block until SIGINT or SIGTERM; ``ready`` is called once the handlers are in place (a
    signal sent before that still ends the process). (The handler only sets a flag: an
    ``Event.set`` in a handler could deadlock on the lock of a wait it interrupted.)"""
    signalled = False

    def on_stop() -> None:
        nonlocal signalled
        signalled = True

    with stop_on_signal(on_stop):
        ready()
        while not signalled:
            time.sleep(poll_s)
