"""``zg devnet up`` starts each service group as soon as the groups it needs are ready: the rule
(``compute_startable``) and the threads that apply it (``run_groups``)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_devnet_groups import tables
from zgos.core.errors import ConfigError, ZgError
from zgos.devnet.schedule import compute_start_needs, compute_startable, run_groups
from zgos.devnet.services import SERVICE_GROUPS, resolve_groups
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup

STEP_S = 0.3  # how long a test group takes to be ready


def _no_services(options: DevnetOptions) -> list[Service]:
    return []


@given(tables(), st.randoms(use_true_random=False))
def test_a_group_starts_only_once_every_group_it_needs_is_ready_and_every_group_starts(
    table: list[ServiceGroup], rng: random.Random
) -> None:
    needs = compute_start_needs(table)
    ready: set[str] = set()
    started: list[str] = []
    running: list[str] = []
    while len(ready) < len(table):
        for name in compute_startable(needs, ready, started):
            assert set(needs[name]) <= ready, f"{name} started before what it needs"
            started.append(name)
            running.append(name)
        assert running, "some group can always start or finish"
        ready.add(running.pop(rng.randrange(len(running))))  # groups get ready in any order
    assert sorted(started) == sorted(g.name for g in table)


def test_a_last_group_waits_for_every_other_group_without_pulling_any_in() -> None:
    table = [ServiceGroup("chain", _no_services, ()), ServiceGroup("a", _no_services),
             ServiceGroup("b", _no_services), ServiceGroup("shows-all", _no_services, last=True)]
    needs = compute_start_needs(table)
    assert compute_startable(needs, {"chain", "a"}, {"chain", "a", "b"}) == []
    assert compute_startable(needs, {"chain", "a", "b"}, {"chain", "a", "b"}) == ["shows-all"]
    assert [g.name for g in resolve_groups(["shows-all"], table)] == ["chain", "shows-all"]


def test_the_devnet_explorer_starts_last_and_the_auditor_after_what_it_audits() -> None:
    needs = compute_start_needs(SERVICE_GROUPS)
    assert set(needs["explorer"]) == {g.name for g in SERVICE_GROUPS} - {"explorer"}
    assert {"storage", "da", "compute"} <= set(needs["alignment"])
    assert "compute" in needs["finetune"], "the compute provider registers the Gemma file first"


def test_a_need_outside_the_plan_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs storage"):
        compute_start_needs([ServiceGroup("chain", _no_services, ()), ServiceGroup("kv", _no_services, ("chain", "storage"))])


class Recorder:
    """Groups that take ``STEP_S`` per service, recording when each group starts and is ready."""

    def __init__(self, services: int = 1, failing: str | None = None) -> None:
        self.services, self.failing = services, failing
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, float]] = []

    def at(self, event: str, name: str) -> float:
        return next(t for e, n, t in self.events if (e, n) == (event, name))

    def start(self, name: str, stop: threading.Event) -> None:
        for i in range(self.services):
            if stop.is_set():
                return
            with self.lock:
                self.events.append(("service", f"{name}-{i}", time.monotonic()))
            time.sleep(STEP_S)
            if name == self.failing:
                raise ZgError(f"{name}-{i} exited during start-up")
        with self.lock:
            self.events.append(("ready", name, time.monotonic()))


def test_independent_groups_overlap_and_a_group_waits_for_its_needs() -> None:
    needs = {"chain": (), "storage": ("chain",), "da": ("chain",), "kv": ("chain", "storage")}
    groups = Recorder()
    started = time.monotonic()
    run_groups(needs, groups.start, ready=["chain"])
    took = time.monotonic() - started
    assert groups.at("service", "da-0") < groups.at("ready", "storage"), "side by side"
    assert groups.at("service", "kv-0") >= groups.at("ready", "storage")
    assert took < 3 * STEP_S, f"{took:.2f} s: storage and da did not overlap"


def test_the_first_failure_stops_the_other_groups_and_is_the_error_raised() -> None:
    needs = {"chain": (), "storage": ("chain",), "da": ("chain",), "kv": ("chain", "storage")}
    groups = Recorder(services=4, failing="storage")
    with pytest.raises(ZgError, match="storage-0 exited during start-up"):
        run_groups(needs, groups.start, ready=["chain"])
    names = [name for event, name, _ in groups.events if event == "service"]
    assert "kv-0" not in names, "a group needing the failed one never starts"
    assert "da-0" in names and "da-2" not in names, "the other group starts no more services"


def test_groups_that_need_each_other_are_an_error() -> None:
    with pytest.raises(ConfigError, match="need each other"):
        run_groups({"a": ("b",), "b": ("a",)}, Recorder().start)
