"""The explorer's event index (``zgos.explorer.events``) against a real anvil of its own (a
reorg made with ``evm_snapshot``/``evm_revert`` must not disturb the session chain): a new
index on the same file resumes from its stored cursor without reading old blocks again, and a
reorg drops the events of the orphaned blocks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import EventData

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import deploy_contract
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.explorer.events import EventIndex, Series
from zgos.runtime.netutil import free_port

BLOCK_TIME_S = 0.2


class LogReadingChain(Chain):
    """The chain, noting the block windows the index asks logs for."""

    def __init__(self, rpc_url: str) -> None:
        super().__init__(rpc_url)
        self.windows: list[tuple[int, int]] = []

    def get_logs(self, contract: Contract, event: str, from_block: int, to_block: int,
                 argument_filters: dict[str, Any] | None = None) -> Sequence[EventData]:
        self.windows.append((from_block, to_block))
        return super().get_logs(contract, event, from_block, to_block, argument_filters)


@pytest.fixture(scope="module")
def own_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=BLOCK_TIME_S),
                 log_path=tmp_path_factory.mktemp("anvil") / "anvil.log")
    node.start()
    yield Chain(node.url)
    node.stop()


@pytest.fixture
def registry(own_chain: Chain) -> NodeRegistry:
    return NodeRegistry(own_chain, deploy_contract(own_chain, devnet_role("deployer"), "NodeRegistry", []))


def operators(chain: Chain, count: int) -> list[LocalAccount]:
    """``count`` new funded accounts (each sends once: no nonce is reused across a revert)."""
    accounts: list[LocalAccount] = [Account.create() for _ in range(count)]
    for account in accounts:
        chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return accounts


def announced(registry: NodeRegistry) -> Series:
    return Series(registry.contract, "NodeAnnounced", 0)


def urls(index: EventIndex, chain: Chain, series: Series) -> list[str]:
    return [e.args["url"] for e in reversed(index.page(chain, series, 100, None).items)]


def test_a_restarted_index_resumes_from_its_cursor_without_reading_old_blocks(
    own_chain: Chain, registry: NodeRegistry, tmp_path: Path
) -> None:
    first, second = operators(own_chain, 2)
    registry.announce(first, NodeKind.STORAGE, "http://first:1")
    series, path = announced(registry), tmp_path / "events.sqlite"
    index = EventIndex(path)
    assert urls(index, own_chain, series) == ["http://first:1"]
    cursor = index.cursor(series)
    assert cursor is not None and cursor > 0
    index.close()
    registry.announce(second, NodeKind.STORAGE, "http://second:1")
    reader = LogReadingChain(own_chain.rpc_url)
    restarted = EventIndex(path)
    page = restarted.page(reader, series, 10, None)
    assert [(e.position, e.args["url"]) for e in page.items] == [(1, "http://second:1"), (0, "http://first:1")]
    assert page.total == 2
    assert reader.windows and min(start for start, _ in reader.windows) == cursor, "old blocks were read again"


def test_a_reorg_drops_the_events_of_orphaned_blocks(own_chain: Chain, registry: NodeRegistry, tmp_path: Path) -> None:
    before, orphan, replacement = operators(own_chain, 3)
    registry.announce(before, NodeKind.STORAGE, "http://before-fork:1")
    series, index = announced(registry), EventIndex(tmp_path / "events.sqlite")
    snapshot = own_chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    orphaned = registry.announce(orphan, NodeKind.STORAGE, "http://orphaned:1", num_shard=4)
    assert urls(index, own_chain, series) == ["http://before-fork:1", "http://orphaned:1"]
    assert (orphaned.block_number, 4) in index.block_sums(own_chain, series, "numShard")
    assert own_chain.w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    registry.announce(replacement, NodeKind.STORAGE, "http://replacement:1", num_shard=2)
    assert urls(index, own_chain, series) == ["http://before-fork:1", "http://replacement:1"]
    assert [total for _, total in index.block_sums(own_chain, series, "numShard")] == [1, 2], "the orphan's 4 is gone"
    page = index.page(own_chain, series, 10, None)
    assert page.total == 2 and [e.position for e in page.items] == [1, 0]


def test_following_the_before_cursor_lists_every_event_once_newest_first(
    own_chain: Chain, registry: NodeRegistry, tmp_path: Path
) -> None:
    for i, operator in enumerate(operators(own_chain, 5)):
        registry.announce(operator, NodeKind.STORAGE, f"http://node-{i}:1")
    series, index = announced(registry), EventIndex(tmp_path / "events.sqlite")
    seen: list[tuple[int, str]] = []
    before = None
    while (page := index.page(own_chain, series, 2, before)).items:
        assert page.total == 5 and len(page.items) <= 2
        seen += [(e.position, e.args["url"]) for e in page.items]
        before = page.items[-1].position
    assert seen == [(i, f"http://node-{i}:1") for i in range(4, -1, -1)]


def test_two_explorers_on_one_file_store_each_event_once(own_chain: Chain, registry: NodeRegistry, tmp_path: Path) -> None:
    first, second, third = operators(own_chain, 3)
    series, path = announced(registry), tmp_path / "events.sqlite"
    old, new = EventIndex(path), EventIndex(path)  # e.g. a restarted explorer while the old one stops
    registry.announce(first, NodeKind.STORAGE, "http://a:1")
    assert urls(old, own_chain, series) == ["http://a:1"]
    registry.announce(second, NodeKind.STORAGE, "http://b:1")
    assert urls(new, own_chain, series) == ["http://a:1", "http://b:1"]
    registry.announce(third, NodeKind.STORAGE, "http://c:1")
    assert urls(old, own_chain, series) == urls(new, own_chain, series) == ["http://a:1", "http://b:1", "http://c:1"]
