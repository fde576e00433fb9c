"""The on-chain ``NodeRegistry``: nodes announce URL, shard and kind; clients discover peers.
And ``register_or_update``, the start-up step of every service that keeps a record on chain.

Entries are self-reported, so readers treat them as hints: ``usable_nodes`` drops entries
whose URL is malformed (with the reason) and callers still verify every byte a node serves.
Anyone can announce, so the lists are read page by page (``getNodesPage``) and at most
``MAX_NODES_READ`` entries per kind are read. ``DEPLOY_PLAN`` deploys it, first of all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar
from urllib.parse import urlparse

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import ContractPlan

log = logging.getLogger(__name__)

MAX_URL_BYTES = 256
NODES_PAGE = 100  # NodeRegistry.MAX_PAGE
MAX_NODES_READ = 10_000

DEPLOY_PLAN: list[ContractPlan] = [ContractPlan("NodeRegistry")]  # the chain's part (zgos.devnet.plan)

Record = TypeVar("Record")


class NodeKind(IntEnum):
    STORAGE = 0
    KV = 1
    DA_SIGNER = 2
    COMPUTE = 3
    INFT_ORACLE = 4


@dataclass(frozen=True)
class RegisteredNode:
    operator: str
    kind: NodeKind
    url: str
    shard_id: int
    num_shard: int
    extra: bytes
    updated_at: int


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a node endpoint, or None if it can (http/https with a host)."""
    if not url or len(url.encode()) > MAX_URL_BYTES:
        return f"URL must be 1..{MAX_URL_BYTES} bytes"
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme!r} is not http or https"
    if not parsed.hostname:
        return "URL has no host"
    if port == 0:
        return "port 0 is not a listening port"
    return None


def register_or_update(registered: Callable[[], Record | None], wanted: Record,
                       write: Callable[[Record], object]) -> bool:
    """Register, or update if changed: send ``write(wanted)`` unless the chain already holds
    ``wanted``. ``registered`` reads the current record (None: nothing registered yet), as a
    value comparable with ``wanted``. A service restarted with unchanged settings so costs
    one read and no transaction. Returns whether it wrote."""
    if registered() == wanted:
        return False
    write(wanted)
    return True


class NodeRegistry:
    """Typed access to one deployed ``NodeRegistry`` contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract("NodeRegistry", address)

    def announce(
        self, operator: LocalAccount, kind: NodeKind, url: str, *, shard_id: int = 0,
        num_shard: int = 1, extra: bytes = b"",
    ) -> Receipt:
        """Announce (or update) ``operator``'s node of ``kind``; the transaction is its signature."""
        fn = self.contract.functions.announce(int(kind), url, shard_id, num_shard, extra)
        return self.chain.transact(operator, fn)

    def remove(self, operator: LocalAccount, kind: NodeKind) -> Receipt:
        return self.chain.transact(operator, self.contract.functions.remove(int(kind)))

    def nodes(self, kind: NodeKind, limit: int = MAX_NODES_READ) -> list[RegisteredNode]:
        """Announced nodes of ``kind`` in announcement order, page by page, at most ``limit``
        (a registry grown past it by sybils is cut there, with a warning)."""
        found: list[RegisteredNode] = []
        while len(found) < limit:
            page, total = self.chain.call(self.contract.functions.getNodesPage(int(kind), len(found), NODES_PAGE),
                                         plain=True)
            found += [
                RegisteredNode(
                    operator=to_checksum_address(entry[0]), kind=NodeKind(entry[1]), url=entry[2], shard_id=int(entry[3]),
                    num_shard=int(entry[4]), extra=bytes(entry[5]), updated_at=int(entry[6]),
                )
                for entry in page
            ][: limit - len(found)]
            if not page or len(found) >= total:
                break
        else:
            log.warning("the NodeRegistry lists more than %d %s nodes: reading the first %d only",
                        limit, kind.name.lower(), limit)
        return found

    def usable_nodes(self, kind: NodeKind) -> list[RegisteredNode]:
        """``nodes(kind)`` without entries whose URL cannot work; each skip is logged with why."""
        usable = []
        for node in self.nodes(kind):
            problem = url_problem(node.url)
            if problem is None:
                usable.append(node)
            else:
                log.warning("skipping %s node of %s: %s", kind.name.lower(), node.operator, problem)
        return usable
