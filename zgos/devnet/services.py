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
from zgos.netutil import port_in_use, rpc_ready

CHAIN_PORT = 8545


@dataclass(frozen=True)
class DevnetOptions:
    """What ``zg devnet up`` was asked for; saved so ``start NAME`` restarts alike."""

    chain_port: int = CHAIN_PORT
    block_time_s: float = 1.0
    storage_nodes: int = 1
    shards: int = 1
    # Added to every service port but the chain's (see ``port``).
    port_offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    def port(self, default: int, chain_delta: int) -> int:
        """A service's port, the one rule every network follows.

        On the default chain port a service listens on its ARCHITECTURE.md ``default``; a
        devnet on any other chain port (tests, a second devnet on one machine) puts it at
        ``chain_port + chain_delta`` instead, so the chain port alone keeps two devnets apart.
        ``port_offset`` is added to either.
        """
        base = default if self.chain_port == CHAIN_PORT else self.chain_port + chain_delta
        return base + self.port_offset


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


STORAGE_PORT = 5678
STORAGE_CHAIN_DELTA = 100  # storage-i at chain port +100+i on a non-default chain port


def storage_port(options: DevnetOptions, i: int) -> int:
    return options.port(STORAGE_PORT + i, STORAGE_CHAIN_DELTA + i)


# Storage node 0 mines (PoRA) with its operator key at a small CPU budget, so the fees of
# uploads visibly reach its beneficiary; `extra={"mine": False}` turns it off.
DEVNET_MINE_CPU = "0.05"


def _miner_args(ctx: DevnetContext, i: int) -> list[str]:
    from zgos.chain.accounts import DEVNET_ROLES

    if i != 0 or not ctx.options.extra.get("mine", True):
        return []
    return ["--miner-key", f"devnet:{DEVNET_ROLES['storage']}", "--mine-threads", "1", "--mine-cpu", DEVNET_MINE_CPU]


def storage_services(options: DevnetOptions) -> list[Service]:
    """``storage-i`` nodes on ports 5678+i, each announcing itself with ``devnet_role("storage", i)``
    and holding shard ``(i % shards)/shards``; they find each other in the NodeRegistry. Their
    admin methods take the devnet's one install token (``DATA_DIR/token``, made by the first)."""
    from zgos.chain.accounts import DEVNET_ROLES
    from zgos.netutil import http_ok
    from zgos.runtime.edge import TOKEN_FILE

    def service(i: int) -> Service:
        port = storage_port(options, i)
        url = f"http://127.0.0.1:{port}"
        return Service(
            name=f"storage-{i}",
            url=url,
            argv=lambda ctx: ctx.zg(
                "storage", "node", "--name", f"storage-{i}", "--port", str(port),
                "--confirmations", "1", "--poll", "0.2",
                "--account", f"devnet:{DEVNET_ROLES['storage'] + i}",
                "--shard", f"{i % options.shards}/{options.shards}",
                "--token-file", str(ctx.data_dir.root / TOKEN_FILE),
                *(_miner_args(ctx, i)),
            ),
            ready=lambda ctx: http_ok(url + "/health"),
            ready_timeout_s=60.0,
        )

    return [service(i) for i in range(options.storage_nodes)]


REPAIR_INTERVAL_S = 10


def repairer_services(options: DevnetOptions) -> list[Service]:
    """``repairer``: a pass over every erasure-coded file every 10 s, restoring the pieces of
    lost nodes onto the live nodes of their shards (no port; healthy once it scanned the chain)."""
    from zgos.storage.repairer import STATE_FILE_NAME

    return [
        Service(
            name="repairer",
            url="-",
            argv=lambda ctx: ctx.zg("storage", "repair", "--watch", str(REPAIR_INTERVAL_S)),
            ready=lambda ctx: (ctx.data_dir.service("repairer") / STATE_FILE_NAME).exists(),
        )
    ]


def service_groups() -> list[Callable[[DevnetOptions], list[Service]]]:
    """Each network's group, in start order (imported here to keep the table in one place)."""
    from zgos.explorer.devnet import explorer_services
    from zgos.storage.indexer.devnet import indexer_services

    return [
        chain_services,
        storage_services,
        indexer_services,
        repairer_services,
        _compute_services,
        da_services,
        explorer_services,  # last: it shows everything else
    ]


def _compute_services(options: DevnetOptions) -> list[Service]:
    from zgos.compute.devnet import compute_services  # imported late: it builds on this module

    return compute_services(options)




DA_CHAIN_DELTA = 200  # signer i at chain port +200+i, then the disperser, on a non-default chain port


def da_services(options: DevnetOptions) -> list[Service]:
    """DA: ``da_signers`` signers (default 4) on 34000+i, then the disperser on 51001."""
    from zgos.da.params import DISPERSER_PORT, SIGNER_BASE_PORT

    count = int(options.extra.get("da_signers", 4))
    signer_ports = [options.port(SIGNER_BASE_PORT + i, DA_CHAIN_DELTA + i) for i in range(count)]
    disperser_port = options.port(DISPERSER_PORT, DA_CHAIN_DELTA + count)
    signers = [
        Service(
            name=f"da-signer-{i}",
            url=f"grpc://127.0.0.1:{port}",
            argv=lambda ctx, i=i, port=port: ctx.zg("da", "signer", "--index", str(i), "--port", str(port)),
            ready=lambda ctx, port=port: port_in_use(port),
            ready_timeout_s=60.0,
        )
        for i, port in enumerate(signer_ports)
    ]
    disperser = Service(
        name="da-disperser",
        url=f"grpc://127.0.0.1:{disperser_port}",
        argv=lambda ctx: ctx.zg("da", "disperser", "--port", str(disperser_port)),
        ready=lambda ctx: port_in_use(disperser_port),
        ready_timeout_s=60.0,
    )
    return [*signers, disperser]




def all_services(options: DevnetOptions) -> list[Service]:
    return [service for group in service_groups() for service in group(options)]
