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


def test_lists_anyone_can_grow_are_read_page_by_page(
    chain: Chain, deployment: Deployment, registry: NodeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Sybils can announce without bound, so no view returns a whole list: pages of at most
    MAX_PAGE entries, each entry bounded (URL and extra), and readers page through."""
    from eth_account import Account

    from zgos.chain.accounts import devnet_role

    operators: list[LocalAccount] = [Account.create() for _ in range(5)]
    for i, operator in enumerate(operators):
        chain.transact(devnet_role("deployer"), to=operator.address, value=10**17)
        registry.announce(operator, NodeKind.DA_SIGNER, f"http://127.0.0.1:{40000 + i}", extra=b"\x01" * 48)
    contract = registry.contract.functions
    assert int(chain.call(contract.MAX_PAGE())) == 100
    everything = [n.operator for n in registry.nodes(NodeKind.DA_SIGNER)]
    total = int(chain.call(contract.nodeCount(int(NodeKind.DA_SIGNER))))
    assert len(everything) == total and everything[-5:] == [o.address for o in operators]
    paged: list[str] = []
    for offset in range(0, total + 2, 2):
        page, reported = chain.call(contract.getNodesPage(int(NodeKind.DA_SIGNER), offset, 2))
        assert reported == total and len(page) == min(2, max(0, total - offset))
        paged += [entry[0] for entry in page]
    assert paged == everything
    page, _ = chain.call(contract.getNodesPage(int(NodeKind.DA_SIGNER), 0, 10**9))
    assert len(page) == min(total, 100), "a page never holds more than MAX_PAGE entries"
    with caplog.at_level(logging.WARNING):
        assert len(registry.nodes(NodeKind.DA_SIGNER, limit=2)) == 2
    assert "reading the first 2 only" in caplog.text
    with pytest.raises(TxReverted, match="InvalidExtra"):
        registry.announce(operators[0], NodeKind.DA_SIGNER, "http://127.0.0.1:40000", extra=b"\x01" * 257)
    for operator in operators:
        registry.remove(operator, NodeKind.DA_SIGNER)
