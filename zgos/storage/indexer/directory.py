"""Which storage nodes the indexer trusts, and why it skips the others.

Sources: the on-chain ``NodeRegistry`` (storage kind) and a static ``--peers`` list (private
networks). Every candidate is probed (``zgs_getStatus`` + ``zgs_getShardConfig``, short
timeout); a node is kept only if it answers, serves the same chain and Flow contract as the
indexer, reports a valid shard config, and (for registry entries) reports the shard config
its operator announced on chain. Every skipped node is logged once per distinct reason and
listed with its reason in ``/node/status``. Refreshes run in the caller's thread (the
indexer's refresh loop); readers get the last complete snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from zgos.chain.registry import NodeKind, NodeRegistry, url_problem
from zgos.core.errors import ZgError
from zgos.storage.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ShardedNode:
    """0G's ``ShardedNode``: ``{url, config{shardId, numShard}, latency (ms), since (unix s)}``."""

    url: str
    config: ShardConfig
    latency_ms: int
    since: int
    source: str  # "registry" or "peers"

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "config": self.config.to_json(), "latency": self.latency_ms, "since": self.since}


@dataclass(frozen=True)
class SkippedNode:
    url: str
    source: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "source": self.source, "reason": self.reason}


@dataclass
class Snapshot:
    nodes: list[ShardedNode] = field(default_factory=list)
    skipped: list[SkippedNode] = field(default_factory=list)
    refreshed_at: float = 0.0


class ProbeFailed(ZgError):
    """A candidate node cannot be used; the message says why."""


class NodeDirectory:
    """Discovers storage nodes from the registry and ``peers`` and keeps the usable ones."""

    def __init__(self, http: httpx.Client, chain_id: int, flow_address: str,
                 registry: NodeRegistry | None = None, peers: tuple[str, ...] = ()) -> None:
        self.http = http
        self.chain_id = chain_id
        self.flow_address = flow_address.lower()
        self.registry = registry
        self.peers = tuple(p.rstrip("/") for p in peers)
        self.snapshot = Snapshot()
        self._since: dict[str, int] = {}
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()

    def candidates(self) -> list[tuple[str, str, ShardConfig | None]]:
        """(url, source, announced shard or None) of every node to probe; bad entries skipped."""
        found: list[tuple[str, str, ShardConfig | None]] = [(url, "peers", None) for url in self.peers]
        if self.registry is not None:
            try:
                entries = self.registry.nodes(NodeKind.STORAGE)
            except ZgError as exc:
                log.warning("cannot read the NodeRegistry: %s", exc)
                entries = []
            for entry in entries:
                announced: ShardConfig | None
                try:
                    announced = ShardConfig(entry.shard_id, entry.num_shard)
                except InvalidShardConfig:
                    announced = None
                found.append((entry.url.rstrip("/"), f"registry:{entry.operator}", announced))
        return found

    def refresh(self) -> Snapshot:
        """Probe every candidate now and replace the snapshot."""
        nodes: list[ShardedNode] = []
        skipped: list[SkippedNode] = []
        seen: set[str] = set()
        for url, source, announced in self.candidates():
            problem = url_problem(url)
            if problem is None and url in seen:
                continue
            if problem is None:
                try:
                    config, latency_ms = self.probe(url)
                    if announced is not None and config != announced:
                        raise ProbeFailed(f"lies about its shard: announced {announced} on chain, serves {config}")
                except ProbeFailed as exc:
                    problem = exc.message
            if problem is not None:
                skipped.append(SkippedNode(url, source, problem))
                self._log_skip(url, source, problem)
                continue
            seen.add(url)
            self._logged.pop(url, None)
            since = self._since.setdefault(url, int(time.time()))
            nodes.append(ShardedNode(url, config, latency_ms, since, source.split(":")[0]))
        snapshot = Snapshot(nodes, skipped, time.time())
        with self._lock:
            self.snapshot = snapshot
        return snapshot

    def probe(self, url: str) -> tuple[ShardConfig, int]:
        """The node's shard config and round-trip time; ``ProbeFailed`` names what is wrong."""
        started = time.monotonic()
        status = self._rpc(url, "zgs_getStatus")
        latency_ms = int((time.monotonic() - started) * 1000)
        identity = status.get("networkIdentity") if isinstance(status, dict) else None
        if not isinstance(identity, dict):
            raise ProbeFailed("zgs_getStatus has no networkIdentity")
        if identity.get("chainId") != self.chain_id:
            raise ProbeFailed(f"serves chain {identity.get('chainId')}, not {self.chain_id}")
        if str(identity.get("flowAddress", "")).lower() != self.flow_address:
            raise ProbeFailed(f"serves Flow {identity.get('flowAddress')}, not {self.flow_address}")
        try:
            config = ShardConfig.from_json(self._rpc(url, "zgs_getShardConfig"))
        except InvalidShardConfig as exc:
            raise ProbeFailed(f"reports a bad shard config: {exc.message}") from None
        return config, latency_ms

    def _rpc(self, url: str, method: str) -> Any:
        try:
            response = self.http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []},
                                      timeout=PROBE_TIMEOUT_S)
            answer = response.json()
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"unreachable ({type(exc).__name__})") from None
        except ValueError:
            raise ProbeFailed(f"{method} answered with something that is not JSON") from None
        if not isinstance(answer, dict) or "result" not in answer:
            raise ProbeFailed(f"{method} failed: {answer.get('error') if isinstance(answer, dict) else answer}")
        return answer["result"]

    def _log_skip(self, url: str, source: str, reason: str) -> None:
        if self._logged.get(url) != reason:
            self._logged[url] = reason
            log.warning("skipping storage node %s (%s): %s", url, source, reason)

    def current(self) -> Snapshot:
        with self._lock:
            return self.snapshot
