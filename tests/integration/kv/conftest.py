"""A KV node on the session chain, reading from one storage node of its own; each test gets a
fresh stream id, so tests never see each other's streams. ``shared_kv`` is one storage node
and one KV node for a whole module, holding a pool of streams handed out one per test."""

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
from zgos.storage.upload import Payload, ReplicaPlacement, Submitted, hash_file


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


STREAMS_PER_MODULE = 32


@dataclass
class SharedKv:
    """One storage node and one KV node monitoring ``STREAMS_PER_MODULE`` fresh streams."""

    node: KvNode
    storage: RunningNode
    streams: list[bytes]
    url: str

    def new_stream(self) -> bytes:
        """A stream of the KV node's that no other test has used."""
        return self.streams.pop()

    def client(self, chain: Chain, deployment: Deployment, account: LocalAccount | None = None) -> KvClient:
        storage = StorageClient([self.storage.url], chain, deployment.address("Flow"), account)
        return KvClient(self.url, storage)


@pytest.fixture(scope="module")
def shared_kv(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[SharedKv]:
    tmp = tmp_path_factory.mktemp("kv-shared")
    storage = start_node(tmp / "storage", chain, deployment)
    streams = [os.urandom(32) for _ in range(STREAMS_PER_MODULE)]
    node = start_kv_node(tmp / "kv", chain, deployment, storage.url, frozenset(streams))
    yield SharedKv(node, storage, streams, node.server.url)
    node.close()
    storage.stop()


@pytest.fixture
def kv(tmp_path: Path, chain: Chain, deployment: Deployment) -> Iterator[KvSetup]:
    storage = start_node(tmp_path / "storage", chain, deployment)
    stream = os.urandom(32)
    node = start_kv_node(tmp_path / "kv", chain, deployment, storage.url, frozenset({stream}))
    yield KvSetup(node, storage, stream, node.server.url)
    node.close()
    storage.stop()


def submit_files(storage: StorageClient, files: list[tuple[bytes, bytes]], scratch: Path) -> list[int]:
    """Submit ``files`` ((bytes, tags) each) in one Flow transaction and send their data to the
    storage nodes; their log sequence numbers. Each file's bytes must differ from the others'."""
    assert storage.flow is not None and storage.account is not None
    scratch.mkdir(parents=True, exist_ok=True)
    paths = []
    for raw, _ in files:
        paths.append(scratch / f"file-{len(list(scratch.iterdir()))}")
        paths[-1].write_bytes(raw)
    trees = [hash_file(p) for p in paths]
    entries = storage.flow.submit(storage.account, [t.submission(tags) for t, (_, tags) in
                                                    zip(trees, files, strict=True)]).entries
    payloads = [Payload(p, t, Submitted(t.root, e.seq, t.size, e.start_entry, e.tx_hash))
                for p, t, e in zip(paths, trees, entries, strict=True)]
    storage.uploads.deliver(payloads, ReplicaPlacement(storage.nodes, 1))
    return [e.seq for e in entries]
