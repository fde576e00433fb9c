"""An in-process indexer + gateway over in-process storage nodes, for the indexer tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import free_port
from zgos.storage.indexer.directory import NodeDirectory
from zgos.storage.indexer.server import IndexerLimits, IndexerServer
from zgos.storage.indexer.service import Indexer


@dataclass
class RunningIndexer:
    directory: NodeDirectory
    server: IndexerServer
    indexer: Indexer
    url: str

    def stop(self) -> None:
        self.server.stop()
        self.indexer.close()
        self.directory.close()


def start_indexer(scratch: Path, chain: Chain, deployment: Deployment, peers: tuple[str, ...] = (),
                  registry: bool = True, limits: IndexerLimits | None = None) -> RunningIndexer:
    source = NodeRegistry(chain, deployment.address("NodeRegistry")) if registry else None
    directory = NodeDirectory(chain.chain_id, deployment.address("Flow"), source, peers, policy=DEVNET_POLICY)
    directory.refresh()
    indexer = Indexer(directory, policy=DEVNET_POLICY, chain=chain, erasure_address=deployment.address("ErasureRegistry"),
                      flow_address=deployment.address("Flow"))
    server = IndexerServer("127.0.0.1", free_port(), indexer, scratch, limits)
    server.start()
    return RunningIndexer(directory, server, indexer, server.url)
