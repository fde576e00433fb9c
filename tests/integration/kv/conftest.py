"""A KV node on the session chain, reading from one storage node of its own; each test gets a
fresh stream id, so tests never see each other's streams."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.kv.client import KvClient
from zgos.kv.node.app import KvNode, KvNodeConfig
from zgos.kv.node.replayer import ReplayConfig
from zgos.runtime.netutil import free_port
from zgos.storage.client import StorageClient


@dataclass
class KvSetup:
    node: KvNode
    storage: RunningNode
    stream: bytes
    url: str

    def client(self, chain: Chain, deployment: Deployment, account: LocalAccount) -> KvClient:
        storage = StorageClient([self.storage.url], chain, deployment.address("Flow"), account)
        return KvClient(self.url, storage)


def start_kv_node(state_dir: Path, chain: Chain, deployment: Deployment, storage_url: str,
                  streams: frozenset[bytes], port: int | None = None, first_block: int | None = None,
                  data_deadline_s: float = 10.0) -> KvNode:
    config = KvNodeConfig(
        state_dir=state_dir, rpc_url=chain.rpc_url, flow_address=deployment.address("Flow"),
        storage_nodes=(storage_url,), port=port or free_port(),
        replay=ReplayConfig(monitored=streams, first_block=chain.block_number() if first_block is None else first_block,
                            poll_s=0.05, data_deadline_s=data_deadline_s),
    )
    node = KvNode(config)
    node.start()
    return node


@pytest.fixture
def kv(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[KvSetup]:
    storage = start_node(tmp_path / "storage", chain, deployment)
    stream = os.urandom(32)
    node = start_kv_node(tmp_path / "kv", chain, deployment, storage.url, frozenset({stream}))
    yield KvSetup(node, storage, stream, node.server.url)
    node.close()
    storage.stop()
