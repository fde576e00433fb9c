"""The devnet's service table. Each network contributes a named group: a function that lists
its services for the chosen options, and the groups it needs running first. ``devnet_services``
returns the services of the groups asked for (``zg devnet up --only``) and of every group they
need, in start order (the chain first); ``all_services`` returns the whole table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zgos.chain.anvil import AnvilConfig
from zgos.core.errors import ConfigError
from zgos.datadir import DataDir
from zgos.netutil import port_in_use, rpc_ready
from zgos.runtime.ports import (
    CHAIN_PORT,
    DA_DISPERSER_PORT,
    DA_SIGNER_DELTA,
    DA_SIGNER_PORT,
    STORAGE_DELTA,
    STORAGE_PORT,
    service_port,
)


@dataclass(frozen=True)
class DevnetOptions:
    """What ``zg devnet up`` was asked for; saved so ``start NAME`` restarts alike."""

    chain_port: int = CHAIN_PORT
    block_time_s: float = 1.0
    storage_nodes: int = 1
    shards: int = 1
    # Added to every service port but the chain's (see ``port``).
    port_offset: int = 0
    # Service groups asked for (``--only``); the groups they need are started too. Empty: all.
    only: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> DevnetOptions:
        """Options as saved in network.json (a list for ``only``; absent in older records)."""
        return cls(**{**record, "only": tuple(record.get("only", ()))})

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    def port(self, default: int, chain_delta: int) -> int:
        """A service's port on this devnet: ``default`` on the default chain port, else
        ``chain_port + chain_delta``, plus ``port_offset`` (``zgos.runtime.ports.service_port``)."""
        return service_port(default, chain_delta, self.chain_port, self.port_offset)


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
    # The service's own health signal, polled until it holds (one deadline for every service:
    # ``netutil.ready_timeout_s``).
    ready: Callable[[DevnetContext], bool]
    # Runs in the orchestrator before the process starts (e.g. fund the service's account).
    prepare: Callable[[DevnetContext], None] | None = None
    # The service's admin API (localhost + install token), if it has one apart from ``url``.
    admin_url: str | None = None


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
        )
    ]


def storage_port(options: DevnetOptions, i: int) -> int:
    return options.port(STORAGE_PORT + i, STORAGE_DELTA + i)


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
    from zgos.runtime.access import TOKEN_FILE

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


def da_services(options: DevnetOptions) -> list[Service]:
    """DA: ``da_signers`` signers (default 4) on 34000+i, then the disperser on 51001."""
    count = int(options.extra.get("da_signers", 4))
    signer_ports = [options.port(DA_SIGNER_PORT + i, DA_SIGNER_DELTA + i) for i in range(count)]
    disperser_port = options.port(DA_DISPERSER_PORT, DA_SIGNER_DELTA + count)
    signers = [
        Service(
            name=f"da-signer-{i}",
            url=f"grpc://127.0.0.1:{port}",
            argv=lambda ctx, i=i, port=port: ctx.zg("da", "signer", "--index", str(i), "--port", str(port)),
            ready=lambda ctx, port=port: port_in_use(port),
        )
        for i, port in enumerate(signer_ports)
    ]
    disperser = Service(
        name="da-disperser",
        url=f"grpc://127.0.0.1:{disperser_port}",
        argv=lambda ctx: ctx.zg("da", "disperser", "--port", str(disperser_port)),
        ready=lambda ctx: port_in_use(disperser_port),
    )
    return [*signers, disperser]


@dataclass(frozen=True)
class ServiceGroup:
    """One network's services (``zg devnet up --only NAME``) and the groups it needs running."""

    name: str
    services: Callable[[DevnetOptions], list[Service]]
    needs: tuple[str, ...] = ("chain",)


def service_groups() -> list[ServiceGroup]:
    """Every group, in start order (imported here to keep the table in one place)."""
    from zgos.compute.devnet import inference_services
    from zgos.compute.finetune.devnet import finetune_services
    from zgos.explorer.devnet import explorer_services
    from zgos.storage.indexer.devnet import indexer_services

    return [
        ServiceGroup("chain", chain_services, needs=()),
        ServiceGroup("storage", storage_services),
        # the indexer and the repairer find the storage nodes in the NodeRegistry
        ServiceGroup("indexer", indexer_services, needs=("storage",)),
        ServiceGroup("repairer", repairer_services, needs=("storage",)),
        ServiceGroup("compute", inference_services),
        # the fine-tuning provider keeps datasets and adapters in storage
        ServiceGroup("finetune", finetune_services, needs=("storage",)),
        ServiceGroup("da", da_services),
        ServiceGroup("explorer", explorer_services),  # last: it shows everything else
    ]


def resolve_groups(asked: Iterable[str], groups: list[ServiceGroup]) -> list[ServiceGroup]:
    """The groups ``asked`` for and every group they need, transitively, in table order;
    nothing asked for means every group. Raises ``ConfigError`` for a name not in the table."""
    by_name = {group.name: group for group in groups}
    wanted: set[str] = set()
    pending = list(asked)
    if not pending:
        return list(groups)
    while pending:
        name = pending.pop()
        if name not in by_name:
            raise ConfigError(f"no devnet service group named {name!r}", f"groups: {', '.join(by_name)}")
        if name not in wanted:
            wanted.add(name)
            pending.extend(by_name[name].needs)
    return [group for group in groups if group.name in wanted]


def devnet_services(options: DevnetOptions) -> list[Service]:
    """The services ``options`` asks for (``only`` and what it needs), in start order."""
    groups = resolve_groups(options.only, service_groups())
    return [service for group in groups for service in group.services(options)]


def all_services(options: DevnetOptions) -> list[Service]:
    """Every service of the table for these options, whatever ``only`` says."""
    return [service for group in service_groups() for service in group.services(options)]
