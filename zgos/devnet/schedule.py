"""When each devnet service group may start: ``zg devnet up`` starts a group as soon as every
group it needs is ready, so groups that do not need each other start side by side.

A group's start needs are its declared ``needs`` (``ServiceGroup.needs``), and for a ``last``
group (the explorer, which shows everything else) every other group of the plan.
``compute_startable`` is the rule; ``run_groups`` applies it with one thread per running group:
the first group that fails sets the shared ``stop`` event (the others start no further
service) and is the error raised once every running group has returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from zgos.core.errors import ConfigError
from zgos.runtime.service import ServiceGroup

# A group's start: it starts its services in order and returns once they are all ready, or
# raises; it checks ``stop`` before each service and gives up early once it is set.
StartGroup = Callable[[str, threading.Event], None]


def compute_start_needs(plan: Iterable[ServiceGroup]) -> dict[str, tuple[str, ...]]:
    """Each planned group's start needs: its ``needs``, and for a ``last`` group every other
    group of the plan. Raises ``ConfigError`` for a need that is not in the plan."""
    plan = list(plan)
    names = [group.name for group in plan]
    result: dict[str, tuple[str, ...]] = {}
    for group in plan:
        missing = [need for need in group.needs if need not in names]
        if missing:
            raise ConfigError(f"devnet service group {group.name!r} needs {', '.join(missing)}, which is not started")
        others = tuple(name for name in names if name != group.name) if group.last else ()
        result[group.name] = tuple(dict.fromkeys((*group.needs, *others)))
    return result


def compute_startable(needs: Mapping[str, Collection[str]], ready: Collection[str],
                      started: Collection[str]) -> list[str]:
    """The groups that may start now, in ``needs`` order: not started yet, and every group
    they need is ready."""
    return [name for name, wanted in needs.items()
            if name not in started and all(need in ready for need in wanted)]


def run_groups(needs: Mapping[str, Collection[str]], start_group: StartGroup,
               ready: Collection[str] = ()) -> None:
    """Start every group of ``needs`` (``ready``: groups already running) as soon as the groups
    it needs are ready, each in its own thread. The first group to raise stops the others from
    starting more services; its error is raised once every running group has returned.
    Raises ``ConfigError`` if some groups can never start (they need each other)."""
    stop = threading.Event()
    done_ok: set[str] = set(ready)
    started: set[str] = set(ready)
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, len(needs)), thread_name_prefix="devnet-group") as pool:
        running: dict[Future[None], str] = {}
        try:
            while True:
                if failure is None:
                    for name in compute_startable(needs, done_ok, started):
                        started.add(name)
                        running[pool.submit(start_group, name, stop)] = name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name, error = running.pop(future), future.exception()
                    if error is None:
                        done_ok.add(name)
                    elif failure is None:
                        failure = error
                        stop.set()
        except BaseException:  # Ctrl-C in the main thread: the running groups give up first
            stop.set()
            raise
    if failure is not None:
        raise failure
    if stuck := [name for name in needs if name not in started]:
        raise ConfigError(f"devnet service groups {', '.join(stuck)} need each other: none can start first")
