"""The explorer among strangers: storage nodes announced on chain that answer ``zgs_getStatus``
with odd values, nested structures, a tarpit or an endless body, against a real explorer
process on the session chain. Each is listed with what it said (or why it could not be
asked); the storage panel keeps answering, and quickly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.adversarial.hostile_http import (
    HostileServer,
    endless_body,
    json_answer,
    jsonrpc_peer,
    tarpit,
)
from tests.integration.explorer.explorer_fixtures import running_explorer
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry

NESTING_DEPTH = 300  # deeper than pydantic validates, shallower than the JSON decoder refuses
PANEL_DEADLINE_S = 10.0  # every node is asked at once with a 2 s total deadline


def _funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


def _status_peer(status: object) -> HostileServer:
    return HostileServer(jsonrpc_peer({"zgs_getStatus": status}, json_answer({"jsonrpc": "2.0", "id": 1})))


@pytest.fixture
def hostile_nodes(chain: Chain, deployment: Deployment) -> Iterator[dict[str, str]]:
    """Hostile storage nodes announced in the NodeRegistry, by role -> URL (removed after)."""
    nested = json.loads("[" * NESTING_DEPTH + "]" * NESTING_DEPTH)
    servers = {
        "odd": _status_peer({"logSyncHeight": True, "nextTxSeq": "seven", "connectedPeers": 1.5,
                             "miner": 42, "error": "a node cannot set the error column"}),
        "nested": _status_peer({"logSyncHeight": nested, "nextTxSeq": 1, "connectedPeers": 0}),
        "not-an-object": _status_peer(["zgs"]),
        "tarpit": HostileServer(tarpit(interval_s=1.0)),
        "endless": HostileServer(endless_body()),
    }
    registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
    operators = [_funded(chain) for _ in servers]
    with ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        for operator, server in zip(operators, servers.values(), strict=True):
            registry.announce(operator, NodeKind.STORAGE, server.url)
        try:
            yield {role: server.url for role, server in servers.items()}
        finally:
            for operator in operators:
                registry.remove(operator, NodeKind.STORAGE)


def test_hostile_storage_nodes_are_listed_with_a_reason_and_the_storage_panel_still_answers(
    chain: Chain, deployment_path: Path, hostile_nodes: dict[str, str], tmp_path: Path,
) -> None:
    with running_explorer(tmp_path, chain, deployment_path) as explorer:
        started = time.monotonic()
        response = httpx.get(f"{explorer}/api/storage", timeout=60)
        elapsed_s = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed_s < PANEL_DEADLINE_S
    rows = {row["url"]: row for row in response.json()["nodes"]}
    odd = rows[hostile_nodes["odd"]]
    assert (odd["error"], odd["logSyncHeight"], odd["nextTxSeq"], odd["peers"], odd["miner"]) == \
        (None, True, "seven", 1.5, None), "scalars are shown as the node sent them"
    assert rows[hostile_nodes["nested"]]["error"] == "not a storage node (zgs_getStatus result of another shape)"
    assert rows[hostile_nodes["nested"]]["logSyncHeight"] is None
    assert rows[hostile_nodes["not-an-object"]]["error"] == "not a storage node (no zgs_getStatus result)"
    for role in ("tarpit", "endless"):
        assert rows[hostile_nodes[role]]["error"] is not None, role
