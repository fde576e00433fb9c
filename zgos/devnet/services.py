"""The devnet's service table. Each network contributes a function that lists its services
for the chosen options; ``all_services`` returns them in start order (the chain first)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zgos.chain.anvil import AnvilConfig
from zgos.datadir import DataDir
from zgos.netutil import rpc_ready

CHAIN_PORT = 8545


@dataclass(frozen=True)
class DevnetOptions:
    """What ``zg devnet up`` was asked for; saved so ``start NAME`` restarts alike."""

    chain_port: int = CHAIN_PORT
    block_time_s: float = 1.0
    storage_nodes: int = 1
    shards: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"


@dataclass(frozen=True)
class DevnetContext:
    data_dir: DataDir
    options: DevnetOptions

    def zg(self, *args: str) -> list[str]:
        """argv running a ``zg`` subcommand against this devnet's data dir."""
        return [sys.executable, "-m", "zgos.cli", "--data-dir", str(self.data_dir.root), *args]


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    argv: Callable[[DevnetContext], list[str]]
    ready: Callable[[DevnetContext], bool]
    ready_timeout_s: float = 30.0
    # Runs in the orchestrator before the process starts (e.g. fund the service's account).
    prepare: Callable[[DevnetContext], None] | None = None


def chain_state_path(data_dir: DataDir) -> Path:
    return data_dir.service("chain") / "state.json"


def chain_services(options: DevnetOptions) -> list[Service]:
    def argv(ctx: DevnetContext) -> list[str]:
        config = AnvilConfig(
            port=ctx.options.chain_port,
            block_time_s=ctx.options.block_time_s,
            state_path=chain_state_path(ctx.data_dir),
        )
        return config.argv()

    return [
        Service(
            name="chain",
            url=options.rpc_url,
            argv=argv,
            ready=lambda ctx: rpc_ready(ctx.options.rpc_url),
            ready_timeout_s=15.0,
        )
    ]


def _compute_services(options: DevnetOptions) -> list[Service]:
    from zgos.compute.devnet import compute_services  # imported late: it builds on this module

    return compute_services(options)


# Each network appends its group here, in start order.
SERVICE_GROUPS: list[Callable[[DevnetOptions], list[Service]]] = [
    chain_services,
    _compute_services,
]


def all_services(options: DevnetOptions) -> list[Service]:
    return [service for group in SERVICE_GROUPS for service in group(options)]
