"""The KV node (``zg kv node``), wired in one place from a typed config: the SQLite store, the
replayer that follows the Flow and fetches transactions from the storage nodes (verified), and
the ``kv_*`` JSON-RPC server behind the guarded edge."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from zgos.chain.client import Chain
from zgos.core.errors import ConfigError
from zgos.kv.node.replayer import ReplayConfig, Replayer
from zgos.kv.node.rpc import kv_methods
from zgos.kv.node.store import KvStore
from zgos.runtime.datadir import DirectoryClaim
from zgos.runtime.edge import EdgePolicy, Route, plain_error_body
from zgos.runtime.jsonrpc import JsonRpcServer, jsonrpc_app
from zgos.runtime.ports import KV_PORT
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract, LogEntry

log = logging.getLogger("zgos.kv.node")

STORE_FILE = "kv.sqlite"
MAX_RPC_BODY_BYTES = 1024 * 1024
RPC_DEADLINE_S = 30.0
MAX_INFLIGHT = 64
WORKER_THREADS = 8


@dataclass(frozen=True)
class KvNodeConfig:
    """Everything ``zg kv node`` is told, with the deployment's addresses resolved."""

    state_dir: Path
    rpc_url: str
    flow_address: str
    storage_nodes: tuple[str, ...]
    replay: ReplayConfig
    host: str = "127.0.0.1"
    port: int = KV_PORT


class KvNode:
    """Store, replayer and server. The server binds at construction: a taken port is a
    ``ConfigError``."""

    def __init__(self, config: KvNodeConfig) -> None:
        if not config.replay.monitored:
            raise ConfigError("a KV node needs at least one stream", "pass --streams 0x<64 hex digits>,...")
        self.config = config
        self.claim = DirectoryClaim(config.state_dir, "KV node")
        try:
            self.store = KvStore(config.state_dir / STORE_FILE, config.replay.first_block)
            chain = Chain(config.rpc_url)
            self.storage = StorageClient(list(config.storage_nodes), chain, config.flow_address)
            self.replayer = Replayer(self.store, FlowContract(chain, config.flow_address), self.fetch, config.replay)
            rpc = JsonRpcServer(kv_methods(self.store, config.replay.monitored, self.status))
            app = jsonrpc_app(rpc, anyio.CapacityLimiter(WORKER_THREADS), [])
            self.server_policy = EdgePolicy(routes=(Route("/", max_body_bytes=MAX_RPC_BODY_BYTES, deadline_s=RPC_DEADLINE_S),),
                                            max_inflight=MAX_INFLIGHT, error_body=plain_error_body)
            self.server = EdgeServer(app, bind_listener(config.host, config.port), self.server_policy)
        except BaseException:  # nothing will run: the directory is free again
            self.claim.release()
            raise

    def fetch(self, entry: LogEntry) -> bytes:
        """The verified bytes of a log entry's file (segments checked against its data root)."""
        _, chunks = self.storage.stream(entry.data_root)
        return b"".join(chunks)

    def status(self) -> dict[str, Any]:
        cursor = self.store.cursor()
        return {"nextTxSeq": cursor.next_seq, "nextBlock": cursor.next_block,
                **{k: v for k, v in asdict(self.replayer.status).items() if k != "synced_block"},
                "syncedBlock": self.replayer.status.synced_block, "results": self.store.counts()}

    def run(self, started: Callable[[], None] = lambda: None) -> None:
        """Replay in the background, call ``started``, serve until SIGINT/SIGTERM."""
        self.replayer.start()
        started()
        try:
            self.server.serve()
        finally:
            self.close()

    def start(self) -> None:
        """Replay and serve in background threads (tests, benches)."""
        self.replayer.start()
        self.server.start()

    def close(self) -> None:
        self.replayer.stop()
        self.server.stop()
        self.storage.close()
        self.store.close()
        self.claim.release()

