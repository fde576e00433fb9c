"""Issue 19: a storage node announces itself even when the chain's RPC is down as it starts: the
announcement retries on a fresh connection until the RPC answers, then lands once. A real relay
in front of the session chain, switched off and on; the real NodeRegistry."""

from __future__ import annotations

import logging
import threading

import pytest
from eth_account.signers.local import LocalAccount

from tests.adversarial.hostile_http import Connection, HostileServer, Request, relay
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.netutil import wait_until
from zgos.storage.node.app import ANNOUNCE_RETRY_S, announce_node
from zgos.storage.spec.shard import ShardConfig


def test_the_announcement_retries_while_the_rpc_is_down_and_lands_once_it_is_back(
    chain: Chain, deployment: Deployment, new_account: LocalAccount, caplog: pytest.LogCaptureFixture,
) -> None:
    up = threading.Event()
    forward = relay(chain.rpc_url)

    def rpc(request: Request, conn: Connection) -> None:
        if up.is_set():
            forward(request, conn)
        else:
            conn.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")  # a proxy before a dead node

    def announcements() -> list[str]:  # other tests' in-process nodes log to the same capture
        return [r.getMessage() for r in caplog.records if r.name == "zgos.storage.announce"]

    registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
    url = f"http://203.0.113.7:{4000 + int(new_account.address[-3:], 16)}"  # only ever announced
    with HostileServer(rpc) as server, caplog.at_level(logging.WARNING, "zgos.storage.announce"):
        up.set()
        behind_relay = Chain(server.url)  # the node's chain client, made while the RPC answered
        up.clear()
        announcer = threading.Thread(target=announce_node, daemon=True, args=(
            behind_relay, deployment.address("NodeRegistry"), new_account, url, ShardConfig(1, 2)))
        announcer.start()
        assert wait_until(lambda: len(announcements()) >= 2, 6 * ANNOUNCE_RETRY_S), "it retried, saying why"
        assert url not in {n.url for n in registry.nodes(NodeKind.STORAGE)}
        up.set()
        announcer.join(6 * ANNOUNCE_RETRY_S)
        assert not announcer.is_alive(), "the announcement ends once it landed"
    mine = [n for n in registry.nodes(NodeKind.STORAGE) if n.operator == new_account.address]
    assert [(n.url, n.shard_id, n.num_shard) for n in mine] == [(url, 1, 2)]
    assert all("announce failed" in m for m in announcements())
    registry.remove(new_account, NodeKind.STORAGE)
