"""The storage node service (``zg storage node``), wired in one place from a typed config.

:class:`NodeService` builds the parts and runs them until signalled:

- the :class:`~zgos.storage.node.node.StorageNode` (store, log sync from the Flow contract,
  peer sync of its shard);
- its :class:`~zgos.storage.node.server.NodeServer` (JSON-RPC ``zgs_*`` and the fast path behind
  the guarded edge) on ``host:port``, its local methods behind the install token;
- with a miner account, the PoRA :class:`~zgos.storage.miner.loop.Miner`, its ``miner_*``
  methods registered through the node RPC's hook (``zgos.storage.miner.app.build_miner``);
- with an operator account, the announcement of the node's URL and shard in the NodeRegistry,
  retried in the background until the chain answers (the node serves meanwhile), and its signed
  custody of the files it holds (``zgs_getCustody``, ``zgos.storage.node.custody``).

``run`` returns on SIGINT/SIGTERM or ``admin_shutdown``, after stopping the miner and the node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ZgError
from zgos.runtime.access import load_or_create_token
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.datadir import DirectoryClaim
from zgos.runtime.listen import format_host
from zgos.runtime.ports import STORAGE_PORT
from zgos.runtime.ratelimit import RateLimit
from zgos.storage.miner.app import build_miner
from zgos.storage.miner.config import MinerConfig
from zgos.storage.node.custody import CustodySigner
from zgos.storage.node.node import NodeConfig, StorageNode
from zgos.storage.node.peersync import SyncConfig
from zgos.storage.node.server import NodeLimits, NodeServer
from zgos.storage.spec.shard import FULL_SHARD, ShardConfig

log = logging.getLogger("zgos.storage.announce")

ANNOUNCE_RETRY_S = 2.0


@dataclass(frozen=True)
class NodeServiceConfig:
    """Everything ``zg storage node`` is told, resolved: the chain facts (Flow, chain id, first
    block, NodeRegistry) come from the deployment or from ``--flow``."""

    name: str  # the service name; its state lives in ``data_dir``
    data_dir: Path
    rpc_url: str
    flow_address: str
    chain_id: int
    start_block: int
    registry_address: str | None  # None: a Flow on another chain, no NodeRegistry (no announcement)
    token_path: Path  # the install token the admin_*/miner_* methods require
    host: str = "127.0.0.1"
    port: int = STORAGE_PORT
    public_url: str | None = None  # the URL announced and told to peers [default http://HOST:PORT]
    confirmations: int = 3
    poll_s: float = 0.5
    fsync: bool = False
    shard: ShardConfig = FULL_SHARD
    peers: tuple[str, ...] = ()
    sync: bool = True
    sync_workers: int = 4
    stuck_timeout_s: float = 120.0
    prune_grace_s: float = 600.0
    outbound: AddressPolicy = field(default_factory=AddressPolicy)
    rate_limit: float | None = None  # segments/s per client address (bursts of twice that); None: default
    announce: bool = True
    remote_admin: bool = False  # admin methods answer callers on other hosts too (with the token)
    miner: MinerConfig | None = None  # None: no mining
    dishonest: str | None = None  # test-only (zgos.storage.node.dishonest)

    @property
    def url(self) -> str:
        return self.public_url or f"http://{format_host(self.host)}:{self.port}"

    def node_config(self) -> NodeConfig:
        sync = SyncConfig(
            peers=self.peers, registry_address=self.registry_address, self_url=self.url, enabled=self.sync,
            workers=self.sync_workers, stuck_timeout_s=self.stuck_timeout_s, prune_grace_s=self.prune_grace_s,
        )
        return NodeConfig(
            data_dir=self.data_dir, rpc_url=self.rpc_url, flow_address=self.flow_address,
            chain_id=self.chain_id, start_block=self.start_block, confirmations=self.confirmations,
            poll_s=self.poll_s, durable_fsync=self.fsync, shard=self.shard, sync=sync, outbound=self.outbound,
            dishonest=self.dishonest,
        )

    def limits(self) -> NodeLimits:
        rate = self.rate_limit
        return NodeLimits.from_env(None if rate is None else RateLimit(rate, 2 * rate))


def announce_node(chain: Chain, registry_address: str, operator: LocalAccount, url: str, shard: ShardConfig) -> None:
    """Announce the node in the NodeRegistry through ``chain``, retrying on a fresh connection to
    the same RPC, with the same confirmations, until the chain answers."""
    current: Chain | None = chain
    while True:
        try:
            current = current or Chain(chain.rpc_url, confirmations=chain.confirmations)
            registry = NodeRegistry(current, registry_address)
            registry.announce(operator, NodeKind.STORAGE, url, shard_id=shard.shard_id, num_shard=shard.num_shard)
            log.info("announced %s in the NodeRegistry", url)
            return
        except ZgError as exc:
            log.warning("announce failed (%s); retrying", exc)
            current = None
            time.sleep(ANNOUNCE_RETRY_S)


class NodeService:
    """A storage node with its server, miner and announcement (see the module docstring). The
    server binds at construction: a taken port is a ``ConfigError`` before anything starts."""

    def __init__(self, config: NodeServiceConfig, chain: Chain, *, operator: LocalAccount | None = None,
                 miner_account: LocalAccount | None = None) -> None:
        self.config, self.chain, self.operator = config, chain, operator
        self.claim = DirectoryClaim(config.data_dir, "storage node")
        try:
            config.token_path.parent.mkdir(parents=True, exist_ok=True)
            token = load_or_create_token(config.token_path)
            self.node = StorageNode(config.node_config())
            self.server = NodeServer(config.host, config.port, self.node, token=token, limits=config.limits(),
                                     public_url=config.public_url, remote_admin=config.remote_admin)
            if operator is not None:  # it signs what it holds (zgs_getCustody), for storage challenges
                self.server.rpc.add_methods(CustodySigner(self.node, operator).methods())
            self.miner = None
            if config.miner is not None and miner_account is not None:
                self.miner = build_miner(self.node, chain, miner_account, config.miner, rpc=self.server.rpc)
        except BaseException:  # nothing will run: the directory is free again
            self.claim.release()
            raise

    def start(self) -> None:
        """Start log and peer sync, the miner, and the announcement (in the background)."""
        self.node.start()
        if self.miner is not None:
            self.miner.start()
        config = self.config
        if config.announce and config.registry_address is not None and self.operator is not None:
            args = (self.chain, config.registry_address, self.operator, config.url, config.shard)
            threading.Thread(target=announce_node, args=args, daemon=True).start()

    def run(self, started: Callable[[], None] = lambda: None) -> None:
        """``start``, call ``started``, serve until SIGINT/SIGTERM or ``admin_shutdown``, then stop."""
        self.start()
        started()
        try:
            self.server.serve()
        finally:
            if self.miner is not None:
                self.miner.close()
            self.node.stop()
            self.claim.release()
