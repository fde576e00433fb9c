"""What one tour step leaves for the next: ``DATA_DIR/tour/state.json``, and how a step says so.

Each step of ``zg tour`` can run alone (``zg tour --step N``), so what a later step needs (the
dataset root, the task id, the tuned model, the response id) is kept in one small JSON object,
written whole through a temporary file and a rename. A step asking for a value no earlier step
wrote raises :class:`StepMissing`, naming the step that writes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from zgos.cli.context import CliContext
from zgos.core.errors import ConfigError
from zgos.runtime.datadir import DataDir
from zgos.runtime.ports import EXPLORER_PORT

STATE_FILE = "state.json"
DEFAULT_EXPLORER_URL = f"http://127.0.0.1:{EXPLORER_PORT}"

# Which step writes each key (what a missing key's error names).
WRITTEN_BY = {
    "dataset_root": 1, "dataset_file": 1, "task_id": 2, "tuned_model_id": 2, "adapter_dir": 2,
    "served_model": 3, "response_id": 4, "response_model": 4, "response_tuned": 4,
}


class StepMissing(ConfigError):
    """A step needs what an earlier step writes, and that step has not run on this data dir."""


def tour_dir(data_dir: DataDir) -> Path:
    return data_dir.root / "tour"


@dataclass
class TourState:
    """The tour's keys in ``path``; ``save`` after every change."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: DataDir) -> TourState:
        path = tour_dir(data_dir) / STATE_FILE
        try:
            values = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            raise ConfigError(f"the tour's state in {path} is unreadable",
                              "delete it and run the tour from step 1: `zg tour`") from None
        return cls(path, values if isinstance(values, dict) else {})

    def need(self, key: str) -> Any:
        """The value of ``key``; :class:`StepMissing` naming the step that writes it if absent."""
        if key not in self.values:
            step = WRITTEN_BY[key]
            raise StepMissing(f"this step needs the {key.replace('_', ' ')} that step {step} records, "
                              f"and step {step} has not run on {self.path.parent.parent}",
                              f"run it first: `zg tour --step {step}` (or the whole tour: `zg tour`)")
        return self.values[key]

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def update(self, **values: Any) -> None:
        self.values.update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.values, indent=2) + "\n")
        tmp.replace(self.path)

    def forget(self, *keys: str) -> None:
        """Drop ``keys`` (a step that runs again invalidates what later steps derived from it)."""
        for key in keys:
            self.values.pop(key, None)
        self.update()


@dataclass
class Guide:
    """How a step talks to the person taking the tour: what it proves, what it checked, where
    the explorer shows it."""

    console: Console
    explorer_url: str | None

    def proves(self, text: str) -> None:
        self.console.print(f"  [bold]proves:[/] {text}", highlight=False)

    def ok(self, text: str) -> None:
        self.console.print(f"  [green]✓[/] {text}", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"  [yellow]note:[/] {text}", highlight=False)

    def link(self, route: str) -> None:
        if self.explorer_url is None:
            self.console.print(f"  [bold]explorer:[/] #/{route} [dim](this devnet runs no explorer: "
                               "`zg explorer serve` shows it)[/]", highlight=False, soft_wrap=True)
            return
        self.console.print(f"  [bold]explorer:[/] {self.explorer_url.rstrip('/')}/#/{route}", highlight=False,
                           soft_wrap=True)

    def waiting(self, what: str, check: Callable[[], Any], timeout_s: float, poll_s: float = 1.0) -> Any:
        """Show a spinner with the elapsed time while ``check()`` returns a falsy value; its first
        truthy value, or a ``ConfigError`` after ``timeout_s``."""
        started = time.monotonic()
        with self.console.status(what) as spinner:
            while not (value := check()):
                elapsed = time.monotonic() - started
                if elapsed > timeout_s:
                    raise ConfigError(f"gave up after {timeout_s:.0f} s: {what}",
                                      "see `zg devnet status` and the service logs (`zg devnet logs NAME`)")
                spinner.update(f"{what} ({elapsed:.0f} s)")
                time.sleep(poll_s)
        return value


@dataclass
class Tour:
    """What every step uses: the CLI context, the kept state and the guide that prints."""

    cli: CliContext
    state: TourState
    guide: Guide

    @staticmethod
    def derived_from(step: int) -> tuple[str, ...]:
        """The keys later steps derived from step ``step``'s output (stale once it runs again)."""
        return tuple(key for key, writer in WRITTEN_BY.items() if writer > step)


def explorer_url(data_dir: DataDir) -> str | None:
    """The explorer of the devnet in ``data_dir`` (network.json); the default port's when no
    devnet wrote its services there; None for a devnet started without one (``--only``)."""
    if "services" not in (data_dir.read_network() or {}):
        return DEFAULT_EXPLORER_URL
    return data_dir.service_url("explorer")
