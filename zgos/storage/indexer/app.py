"""The storage indexer service (``zg storage indexer``), wired in one place from a typed config.

:class:`IndexerService` builds the :class:`~zgos.storage.indexer.directory.NodeDirectory` (nodes
from the NodeRegistry and/or static peers), the :class:`~zgos.storage.indexer.service.Indexer`
over it and its :class:`~zgos.storage.indexer.server.IndexerServer` (``indexer_*`` JSON-RPC and
the REST gateway) on ``host:port``; ``run`` probes the nodes every ``refresh_s`` in the
background (the first probe at once, while the server already answers) and serves until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zgos.chain.client import Chain
from zgos.chain.registry import NodeRegistry
from zgos.chain.standing import Standings
from zgos.core.errors import ConfigError
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.ports import INDEXER_PORT
from zgos.storage.discovery import PROBE_DEADLINE_S, PROBE_GRACE_S
from zgos.storage.indexer.directory import NodeDirectory
from zgos.storage.indexer.server import IndexerServer
from zgos.storage.indexer.service import Indexer

log = logging.getLogger("zgos.storage.indexer")


@dataclass(frozen=True)
class IndexerConfig:
    """Everything ``zg storage indexer`` is told, with the deployment's addresses resolved."""

    scratch_dir: Path  # DATA_DIR/NAME/scratch
    chain_id: int
    flow_address: str
    erasure_address: str
    registry_address: str | None  # None: no NodeRegistry discovery, ``peers`` only
    refresh_s: float  # seconds between node probes
    host: str = "127.0.0.1"
    port: int = INDEXER_PORT
    peers: tuple[str, ...] = ()  # storage node URLs used besides the registry
    outbound: AddressPolicy = field(default_factory=AddressPolicy)

    @property
    def probe_wait_s(self) -> float:
        """How long a refresh waits for slow probes: a slow entry never holds the snapshot back
        longer than this, its probe carries over."""
        return min(self.refresh_s, PROBE_DEADLINE_S + PROBE_GRACE_S)


class IndexerService:
    """The indexer with its node directory and server (see the module docstring). The server
    binds at construction: a taken port is a ``ConfigError``."""

    def __init__(self, config: IndexerConfig, chain: Chain, standings: Standings | None = None) -> None:
        if config.registry_address is None and not config.peers:
            raise ConfigError("no node source: --no-registry needs at least one --peers URL")
        self.config = config
        source = NodeRegistry(chain, config.registry_address) if config.registry_address is not None else None
        self.directory = NodeDirectory(config.chain_id, config.flow_address, source, config.peers,
                                       policy=config.outbound, standings=standings)
        self.indexer = Indexer(self.directory, policy=config.outbound, chain=chain,
                               erasure_address=config.erasure_address, flow_address=config.flow_address)
        self.server = IndexerServer(config.host, config.port, self.indexer, config.scratch_dir)
        self.stop = threading.Event()

    def refresh_nodes(self) -> None:
        """Probe the nodes until ``stop``; a failed round (e.g. the chain is down) keeps the last
        snapshot and is retried."""
        while True:
            try:
                self.directory.refresh(self.config.probe_wait_s)
            except Exception as exc:
                log.warning("node refresh failed: %s", exc)
            if self.stop.wait(self.config.refresh_s):
                return

    def run(self, started: Callable[[], None] = lambda: None) -> None:
        """Refresh the nodes in the background, call ``started``, serve until SIGINT/SIGTERM."""
        threading.Thread(target=self.refresh_nodes, daemon=True).start()
        started()
        try:
            self.server.serve()
        finally:
            self.stop.set()
            self.indexer.close()
            self.directory.close()
