"""Readiness waits: a service's own health signal, one deadline for all of them
(``$ZGOS_READY_TIMEOUT_S``), and no waiting at all for a service that is gone."""

from __future__ import annotations

import time

import pytest

from zgos.core.errors import ConfigError
from zgos.runtime.netutil import (
    DEFAULT_READY_TIMEOUT_S,
    READY_TIMEOUT_ENV,
    ready_timeout_s,
    wait_ready,
)


def test_the_readiness_deadline_is_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(READY_TIMEOUT_ENV, raising=False)
    assert ready_timeout_s() == DEFAULT_READY_TIMEOUT_S
    monkeypatch.setenv(READY_TIMEOUT_ENV, "900")
    assert ready_timeout_s() == 900.0
    for bad in ("soon", "0", "-5", "nan"):
        monkeypatch.setenv(READY_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=READY_TIMEOUT_ENV):
            ready_timeout_s()


def test_wait_ready_returns_as_soon_as_the_health_signal_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READY_TIMEOUT_ENV, "30")
    ready_at = time.monotonic() + 0.3
    assert wait_ready(lambda: time.monotonic() >= ready_at, interval_s=0.01)
    assert time.monotonic() - ready_at < 5


def test_wait_ready_gives_up_at_once_on_a_dead_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READY_TIMEOUT_ENV, "30")
    started = time.monotonic()
    assert not wait_ready(lambda: False, alive=lambda: False)
    assert time.monotonic() - started < 5


def test_wait_ready_gives_up_after_the_deadline_and_survives_a_failing_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(READY_TIMEOUT_ENV, "0.3")

    def refused() -> bool:
        raise ConnectionRefusedError

    started = time.monotonic()
    assert not wait_ready(refused, interval_s=0.01)
    assert 0.3 <= time.monotonic() - started < 5
