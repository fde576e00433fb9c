"""Storage fixtures: a real node (in-process HTTP server + log sync) on the session chain."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.access import TOKEN_FILE, load_or_create_token
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import call_jsonrpc, free_port
from zgos.storage.client import StorageClient
from zgos.storage.node.node import NodeConfig, StorageNode
from zgos.storage.node.peersync import SyncConfig
from zgos.storage.node.server import NodeLimits, NodeServer
from zgos.storage.spec.shard import FULL_SHARD, ShardConfig


@dataclass
class RunningNode:
    node: StorageNode
    server: NodeServer
    url: str
    token: str

    def stop(self) -> None:
        self.server.stop()
        self.node.stop()

    def admin(self, method: str, *params: Any) -> Any:
        """An admin method's result, called as the operator (install token, own Host)."""
        with httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as http:
            return call_jsonrpc(http, self.url, method, params)


def start_node(data_dir: Path, chain: Chain, deployment: Deployment, rpc_url: str | None = None,
               shard: ShardConfig = FULL_SHARD, port: int | None = None, peers: tuple[str, ...] = (),
               limits: NodeLimits | None = None, **options: Any) -> RunningNode:
    port = port or free_port()
    sync = SyncConfig(peers=peers, self_url=f"http://127.0.0.1:{port}", start_delay_s=0.2,
                      discovery_interval_s=1.0, **options.pop("sync", {}))
    config = NodeConfig(
        data_dir=data_dir, rpc_url=rpc_url or chain.rpc_url, flow_address=deployment.address("Flow"),
        chain_id=chain.chain_id, start_block=deployment.deploy_block, confirmations=0, poll_s=0.05,
        shard=shard, sync=sync, outbound=options.pop("outbound", DEVNET_POLICY), **options,
    )
    node = StorageNode(config)
    token = load_or_create_token(data_dir / TOKEN_FILE)
    server = NodeServer("127.0.0.1", port, node, token=token, limits=limits)
    node.start()
    server.start()
    return RunningNode(node, server, server.url, token)


@pytest.fixture
def storage_node(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "node", chain, deployment)
    yield running
    running.stop()


@pytest.fixture
def client(storage_node: RunningNode, chain: Chain, deployment: Deployment, new_account: LocalAccount) -> Iterator[StorageClient]:
    with StorageClient([storage_node.url], chain, deployment.address("Flow"), new_account) as c:
        yield c
