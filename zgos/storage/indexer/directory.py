"""Which storage nodes the indexer trusts, and why it skips the others.

Sources: the on-chain ``NodeRegistry`` (storage kind) and a static ``--peers`` list (private
networks). Every candidate is probed with ``zgos.storage.discovery.probe`` (the clients'
check): a node is kept only if its URL can work, it answers, serves the same chain and Flow
contract as the indexer, and (for registry entries) serves the shard config its operator
announced on chain. Every skipped node is logged once per distinct reason and
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

from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ZgError
from zgos.storage.discovery import PROBE_TIMEOUT_S, Candidate, probe
from zgos.storage.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ShardedNode:
    """0G's ``ShardedNode``: ``{url, config{shardId, numShard}, latency (ms), since (unix s)}``."""

    url: str
    config: ShardConfig
    latency_ms: int
    since: int
    source: str  # "registry (operator 0x..)" or "--peers"

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


class NodeDirectory:
    """Discovers storage nodes from the registry and ``peers`` and keeps the usable ones."""

    def __init__(self, chain_id: int, flow_address: str, registry: NodeRegistry | None = None,
                 peers: tuple[str, ...] = ()) -> None:
        self.http = httpx.Client(timeout=PROBE_TIMEOUT_S)
        self.chain_id = chain_id
        self.flow_address = flow_address.lower()
        self.registry = registry
        self.peers = tuple(p.rstrip("/") for p in peers)
        self.snapshot = Snapshot()
        self._since: dict[str, int] = {}
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()

    def candidates(self) -> list[Candidate]:
        """Static peers then registry entries (unreadable shard claims kept as None: the probe
        then reports what the node serves)."""
        found = [Candidate(url, None, "--peers") for url in self.peers]
        if self.registry is not None:
            try:
                entries = self.registry.nodes(NodeKind.STORAGE)
            except ZgError as exc:
                log.warning("cannot read the NodeRegistry: %s", exc)
                entries = []
            for entry in entries:
                try:
                    claimed: ShardConfig | None = ShardConfig(entry.shard_id, entry.num_shard)
                except InvalidShardConfig:
                    claimed = None
                found.append(Candidate(entry.url.rstrip("/"), claimed, f"registry (operator {entry.operator})"))
        return found

    def refresh(self) -> Snapshot:
        """Probe every candidate now (``zgos.storage.discovery.probe``) and replace the snapshot."""
        nodes: list[ShardedNode] = []
        skipped: list[SkippedNode] = []
        seen: set[str] = set()
        for candidate in self.candidates():
            url = candidate.url.rstrip("/")
            if url in seen:
                continue
            started = time.monotonic()
            outcome = probe(self.http, candidate, self.chain_id, self.flow_address)
            latency_ms = int((time.monotonic() - started) * 1000)
            if isinstance(outcome, str):
                skipped.append(SkippedNode(url, candidate.source, outcome))
                self._log_skip(url, candidate.source, outcome)
                continue
            seen.add(url)
            self._logged.pop(url, None)
            since = self._since.setdefault(url, int(time.time()))
            nodes.append(ShardedNode(url, outcome.shard, latency_ms, since, candidate.source))
        snapshot = Snapshot(nodes, skipped, time.time())
        with self._lock:
            self.snapshot = snapshot
        return snapshot

    def _log_skip(self, url: str, source: str, reason: str) -> None:
        if self._logged.get(url) != reason:
            self._logged[url] = reason
            log.warning("skipping storage node %s (%s): %s", url, source, reason)

    def close(self) -> None:
        self.http.close()

    def current(self) -> Snapshot:
        with self._lock:
            return self.snapshot
