"""An in-process indexer + gateway over in-process storage nodes, for the indexer tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.netutil import free_port
from zgos.storage.indexer.directory import NodeDirectory
from zgos.storage.indexer.server import IndexerServer
from zgos.storage.indexer.service import Indexer


@dataclass
class RunningIndexer:
    directory: NodeDirectory
    server: IndexerServer
    http: httpx.Client
    url: str

    def stop(self) -> None:
        self.server.stop()
        self.http.close()
        self.directory.close()


def start_indexer(scratch: Path, chain: Chain, deployment: Deployment, peers: tuple[str, ...] = (),
                  registry: bool = True) -> RunningIndexer:
    http = httpx.Client(timeout=30)
    source = NodeRegistry(chain, deployment.address("NodeRegistry")) if registry else None
    directory = NodeDirectory(chain.chain_id, deployment.address("Flow"), source, peers)
    directory.refresh()
    indexer = Indexer(directory, http, chain=chain, erasure_address=deployment.address("ErasureRegistry"))
    server = IndexerServer("127.0.0.1", free_port(), indexer, scratch)
    server.start()
    return RunningIndexer(directory, server, http, server.url)
