"""An in-process DA network on the session anvil: private contracts, 4 signers and a
disperser, each a real gRPC server on a free 127.0.0.1 port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from zgos.chain.client import Chain
from zgos.da.client import DisperserClient
from zgos.da.contracts import DAContracts
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.servicer import serve_disperser
from zgos.da.proto import disperser_pb2
from zgos.da.signer.signer import SignerIdentity, SignerNode, ensure_registered, serve_signer
from zgos.da.signer.store import CellStore
from zgos.da.spec.encoding import Encoder
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import free_port

from .helpers import CERTIFIED, deploy_da, funded_signer, next_epoch

SIGNERS = 4
STAKE = 10 * 10**18
TERMINAL = CERTIFIED | {disperser_pb2.FAILED}


@dataclass
class DANetwork:
    da: DAContracts
    nodes: list[SignerNode]
    ports: list[int]
    disperser: Disperser
    disperser_target: str
    encoder: Encoder
    servers: dict[int, grpc.Server] = field(default_factory=dict)
    last_request_id: bytes = b""

    def stop_signer(self, i: int) -> None:
        self.servers.pop(i).stop(0).wait()

    def start_signer(self, i: int, node: SignerNode | None = None) -> None:
        if i in self.servers:
            self.stop_signer(i)
        self.servers[i] = serve_signer(node or self.nodes[i], "127.0.0.1", self.ports[i])

    def restart_all(self) -> None:
        for i in range(len(self.nodes)):
            self.start_signer(i)

    def client(self) -> DisperserClient:
        """A client of the test disperser holding its install token."""
        return DisperserClient(self.disperser_target, token=self.disperser.token)

    def disperse(self, data: bytes, timeout_s: float = 60.0) -> disperser_pb2.BlobStatusReply:
        with self.client() as client:
            request_id = self.last_request_id = client.disperse(data)
            deadline = time.monotonic() + timeout_s
            while True:
                reply = client.status(request_id)
                if reply.status in TERMINAL:
                    return reply
                assert time.monotonic() < deadline, f"still {reply.status}: {reply.reason}"
                time.sleep(0.1)


@pytest.fixture(scope="module")
def network(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DANetwork]:
    da = deploy_da(chain)
    root = tmp_path_factory.mktemp("da")
    nodes, ports = [], []
    for i in range(SIGNERS):
        keys = funded_signer(chain)
        identity = SignerIdentity(keys.account, keys.secret)
        port = free_port()
        ensure_registered(da, identity, f"127.0.0.1:{port}", STAKE)
        nodes.append(SignerNode(da, identity, CellStore(root / f"signer-{i}")))
        ports.append(port)
    next_epoch(da)
    encoder = Encoder(workers=0)
    payer = funded_signer(chain).account
    disperser = Disperser(da, payer, encoder, root / "disperser", DEVNET_POLICY)
    port = free_port()
    server = serve_disperser(disperser, "127.0.0.1", port)
    net = DANetwork(da, nodes, ports, disperser, f"127.0.0.1:{port}", encoder)
    net.restart_all()
    yield net
    server.stop(0)
    for i in list(net.servers):
        net.stop_signer(i)
    disperser.close()


@pytest.fixture
def healthy(network: DANetwork) -> Iterator[DANetwork]:
    """The network with every signer serving, restored after the test."""
    network.restart_all()
    yield network
    network.restart_all()


def blob_bytes(seed: int, size: int = 3000) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


@pytest.fixture
def tmp_store(tmp_path: Path) -> CellStore:
    return CellStore(tmp_path / "cells")
