"""Finding storage nodes: the on-chain ``NodeRegistry`` plus an optional static ``--peers`` list.

Registry entries are self-reported hints, so every candidate is probed before use
(storage.md §5.2 "Discovery": ``zgs_getShardConfig`` with a short timeout) and skipped, with the
reason logged, when its URL cannot work, it does not answer, it serves another network (chain
id or Flow address), or the shard it reports differs from the shard it announced on chain
(a node lying about its shard). Callers still verify every byte a node serves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from zgos.chain.registry import NodeKind, NodeRegistry, url_problem
from zgos.core.errors import ZgError
from zgos.netutil import JsonRpcFailure, JsonRpcUnreachable, call_jsonrpc
from zgos.storage.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
PROBE_WORKERS = 8


@dataclass(frozen=True)
class PeerNode:
    """A storage node that answered a probe, with the shard it serves."""

    url: str
    shard: ShardConfig


@dataclass(frozen=True)
class Candidate:
    url: str
    claimed: ShardConfig | None  # the shard announced in the registry (None: static peer)
    source: str  # "registry (operator 0x..)" or "--peers"


def probe(http: httpx.Client, candidate: Candidate, chain_id: int | None = None,
          flow_address: str | None = None) -> PeerNode | str:
    """The node as a ``PeerNode``, or the reason it must be skipped."""
    url = candidate.url.rstrip("/")
    problem = url_problem(url)
    if problem is not None:
        return problem
    try:
        shard = ShardConfig.from_json(call_jsonrpc(http, url, "zgs_getShardConfig"))
        identity = None
        if chain_id is not None or flow_address is not None:
            status = call_jsonrpc(http, url, "zgs_getStatus")
            identity = status.get("networkIdentity", {}) if isinstance(status, dict) else {}
    except JsonRpcUnreachable as exc:
        return f"unreachable ({exc})"
    except (JsonRpcFailure, InvalidShardConfig) as exc:
        return f"not a storage node ({str(exc)[:120]})"
    if identity is not None:
        if chain_id is not None and identity.get("chainId") != chain_id:
            return f"serves chain {identity.get('chainId')}, not {chain_id}"
        served = str(identity.get("flowAddress", "")).lower()
        if flow_address is not None and served != flow_address.lower():
            return f"serves Flow {served or '?'}, not {flow_address}"
    if candidate.claimed is not None and candidate.claimed != shard:
        return f"announced shard {candidate.claimed} on chain but serves shard {shard}"
    return PeerNode(url, shard)


def candidates(registry: NodeRegistry | None, peers: Sequence[str] = ()) -> list[Candidate]:
    """Registry entries (URLs that cannot work already skipped and logged) then static peers,
    each URL once."""
    found: dict[str, Candidate] = {}
    if registry is not None:
        for node in registry.usable_nodes(NodeKind.STORAGE):
            try:
                claimed: ShardConfig | None = ShardConfig(node.shard_id, node.num_shard)
            except InvalidShardConfig as exc:
                log.warning("skipping storage node %s (operator %s): %s", node.url, node.operator, exc.message)
                continue
            found.setdefault(node.url.rstrip("/"), Candidate(node.url, claimed, f"registry (operator {node.operator})"))
    for url in peers:
        found.setdefault(url.rstrip("/"), Candidate(url, None, "--peers"))
    return list(found.values())


def discover(registry: NodeRegistry | None, peers: Sequence[str] = (), *, exclude: Sequence[str] = (),
             chain_id: int | None = None, flow_address: str | None = None,
             timeout_s: float = PROBE_TIMEOUT_S) -> list[PeerNode]:
    """Usable storage nodes from the registry and ``peers`` (minus ``exclude``), probed in
    parallel; each skipped one is logged with its reason."""
    excluded = {url.rstrip("/") for url in exclude}
    todo = [c for c in candidates(registry, peers) if c.url.rstrip("/") not in excluded]
    if not todo:
        return []
    with httpx.Client(timeout=timeout_s) as http, ThreadPoolExecutor(min(PROBE_WORKERS, len(todo))) as pool:
        outcomes = list(pool.map(lambda c: probe(http, c, chain_id, flow_address), todo))
    usable = []
    for candidate, outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, PeerNode):
            usable.append(outcome)
        else:
            log.warning("skipping storage node %s from %s: %s", candidate.url, candidate.source, outcome)
    return usable


class NoStorageNodes(ZgError):
    """Discovery found no usable storage node."""
