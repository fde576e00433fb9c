"""What a network declares to run on a devnet. Each network lists its services in its own
``devnet.py`` (a ``ServiceGroup`` of ``Service`` entries built from ``DevnetOptions``);
``zgos.devnet.services`` holds the table of groups and the orchestrator runs it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from zgos.runtime.datadir import DataDir
from zgos.runtime.listen import format_host
from zgos.runtime.ports import CHAIN_PORT, STORAGE_DELTA, STORAGE_PORT, service_port

DEFAULT_DA_SIGNERS = 4


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
    # Storage node 0 mines (PoRA), so upload fees visibly reach its beneficiary.
    mine: bool = True
    da_signers: int = DEFAULT_DA_SIGNERS
    # The address every service, the chain included, binds and announces (``--host``): other
    # hosts join a devnet on a routable one.
    host: str = "127.0.0.1"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> DevnetOptions:
        """Options as saved in network.json (a list for ``only``); a key this version does not
        know (an older record's) is ignored, a missing one takes its default."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in record.items() if key in known}
        return cls(**{**values, "only": tuple(values.get("only", ()))})

    @property
    def rpc_url(self) -> str:
        return self.url(self.chain_port)

    def url(self, port: int, scheme: str = "http") -> str:
        """The URL of this devnet's service on ``port``: on ``host``, as it is announced."""
        return f"{scheme}://{format_host(self.host)}:{port}"

    def port(self, default: int, chain_delta: int) -> int:
        """A service's port on this devnet: ``default`` on the default chain port, else
        ``chain_port + chain_delta``, plus ``port_offset`` (``zgos.runtime.ports.service_port``)."""
        return service_port(default, chain_delta, self.chain_port, self.port_offset)

    def storage_urls(self) -> list[str]:
        """The devnet's storage nodes (node i on ``STORAGE_PORT + i``): where the KV node and
        the INFT oracles read and write files."""
        return [self.url(self.port(STORAGE_PORT + i, STORAGE_DELTA + i)) for i in range(self.storage_nodes)]


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


@dataclass(frozen=True)
class ServiceGroup:
    """One network's services (``zg devnet up --only NAME``) and the groups it needs running."""

    name: str
    services: Callable[[DevnetOptions], list[Service]]
    # Every group that must be ready before this one starts: whatever its services' ``prepare``
    # hooks and processes use at start-up (``zg devnet up`` starts groups side by side, so an
    # undeclared need is a race). ``--only`` starts them too.
    needs: tuple[str, ...] = ("chain",)
    # Starts once every other group started with it is ready (it shows them), without pulling
    # any in (``zgos.devnet.schedule``).
    last: bool = False
