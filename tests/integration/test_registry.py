"""NodeRegistry: announce, update, remove, discovery, and skipping unusable entries."""

from __future__ import annotations

import logging

import pytest
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry, url_problem
from zgos.core.errors import TxReverted


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> NodeRegistry:
    return NodeRegistry(chain, deployment.address("NodeRegistry"))


def mine(registry: NodeRegistry, operator: str, kind: NodeKind) -> list[str]:
    return [n.url for n in registry.nodes(kind) if n.operator == operator]


def test_announce_update_and_remove(registry: NodeRegistry, new_account: LocalAccount) -> None:
    registry.announce(new_account, NodeKind.KV, "http://127.0.0.1:6789", shard_id=1, num_shard=2)
    assert mine(registry, new_account.address, NodeKind.KV) == ["http://127.0.0.1:6789"]
    registry.announce(new_account, NodeKind.KV, "http://127.0.0.1:7000", shard_id=0, num_shard=1)
    (node,) = [n for n in registry.nodes(NodeKind.KV) if n.operator == new_account.address]
    assert (node.url, node.shard_id, node.num_shard) == ("http://127.0.0.1:7000", 0, 1)
    receipt = registry.remove(new_account, NodeKind.KV)
    assert receipt.events(registry.contract, "NodeRemoved")[0]["args"]["operator"] == new_account.address
    assert mine(registry, new_account.address, NodeKind.KV) == []
    with pytest.raises(TxReverted, match="NotAnnounced"):
        registry.remove(new_account, NodeKind.KV)


@pytest.mark.parametrize(
    ("url", "shard", "num", "reason"),
    [("", 0, 1, "InvalidUrl"), ("http://x", 0, 3, "InvalidShard"), ("http://x", 2, 2, "InvalidShard")],
)
def test_bad_announcements_revert_with_a_reason(
    registry: NodeRegistry, new_account: LocalAccount, url: str, shard: int, num: int, reason: str
) -> None:
    with pytest.raises(TxReverted, match=reason):
        registry.announce(new_account, NodeKind.STORAGE, url, shard_id=shard, num_shard=num)


def test_unusable_urls_are_skipped_with_a_logged_reason(
    registry: NodeRegistry, new_account: LocalAccount, caplog: pytest.LogCaptureFixture
) -> None:
    registry.announce(new_account, NodeKind.COMPUTE, "ftp://files.example")
    with caplog.at_level(logging.WARNING):
        usable = registry.usable_nodes(NodeKind.COMPUTE)
    assert new_account.address not in [n.operator for n in usable]
    assert "not http or https" in caplog.text


@pytest.mark.parametrize(
    ("url", "ok"),
    [("http://127.0.0.1:5678", True), ("https://node.example", True), ("ftp://x", False),
     ("http://", False), ("http://h:0", False), ("http://h:99999", False), ("x" * 300, False)],
)
def test_url_problem(url: str, ok: bool) -> None:
    assert (url_problem(url) is None) == ok


def test_the_registry_is_read_page_by_page_and_a_reader_stops_at_its_limit(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    """A private registry with 5 entries: pages of 2 give the same list as one read; a reader
    asked for 3 stops there and says so; a page request is capped by the contract."""
    from eth_account import Account

    from zgos.chain.accounts import devnet_role
    from zgos.chain.deploy import deploy_contract

    registry = NodeRegistry(chain, deploy_contract(chain, devnet_role("deployer"), "NodeRegistry", []))
    operators = []
    for i in range(5):
        operator: LocalAccount = Account.create()
        chain.transact(devnet_role("deployer"), to=operator.address, value=10**17)
        registry.announce(operator, NodeKind.KV, f"http://127.0.0.1:{7000 + i}")
        operators.append(operator.address)
    whole = registry.nodes(NodeKind.KV)
    assert [n.operator for n in whole] == operators
    assert registry.nodes(NodeKind.KV, page_size=2) == whole
    with caplog.at_level(logging.WARNING):
        assert registry.nodes(NodeKind.KV, limit=3, page_size=2) == whole[:3]
    assert "holds 5 kv entries: read the first 3" in caplog.text
    page, total = registry.contract.functions.getNodes(int(NodeKind.KV), 0, 10**9).call()
    assert (len(page), total) == (5, 5)
    assert registry.contract.functions.MAX_PAGE().call() == 128
    assert registry.contract.functions.getNodes(int(NodeKind.KV), 9, 2).call() == [[], 5]
