"""Which storage nodes the indexer trusts, and why it skips the others.

Sources: the on-chain ``NodeRegistry`` (storage kind) and a static ``--peers`` list (private
networks). Every candidate is probed by a ``zgos.storage.discovery.Prober`` (the clients'
check): a node is kept only if its URL can work, it answers within the probe deadline, serves
the same chain and Flow contract as the indexer, and (for registry entries) serves the shard
config its operator announced on chain. A failing entry is scored down and backed off; every
skipped node is logged once per distinct reason and listed in ``/node/status`` with its reason,
score and time to its next probe.

Refreshes run in the caller's thread (the indexer's refresh loop) and wait for probes at most
``wait_s``: a probe still running then (a tarpit) is carried into the next refresh instead of
holding the snapshot back, so the snapshot's age stays about one refresh interval plus
``wait_s`` whatever the registry holds. Readers get the last complete snapshot.

A refresh reads the whole registry but probes only what may have changed: new entries, changed
shard claims, failing entries whose backoff ended, nodes last checked ``REPROBE_S`` ago, and
nodes a call failed on since (``recheck``). So a round with nothing new costs about the same
with 4 nodes as with 32 (bench_scale's "indexer refresh"), and every node is still re-probed at
least every ``REPROBE_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from zgos.chain.registry import NodeRegistry
from zgos.chain.standing import Standings
from zgos.core.errors import ZgError
from zgos.runtime.addresses import AddressPolicy
from zgos.storage.discovery import STATIC_SOURCE, Candidate, Prober, SkippedNode, registry_entries
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

REPROBE_S = 30.0  # a node that answered is trusted this long before it is probed again


@dataclass(frozen=True)
class ShardedNode:
    """0G's ``ShardedNode``: ``{url, config{shardId, numShard}, latency (ms), since (unix s)}``."""

    url: str
    config: ShardConfig
    latency_ms: int
    since: int
    source: str  # "registry (operator 0x..)" or "--peers"


@dataclass
class Snapshot:
    nodes: list[ShardedNode] = field(default_factory=list)
    skipped: list[SkippedNode] = field(default_factory=list)
    refreshed_at: float = 0.0  # time.time()


class NodeDirectory:
    """Discovers storage nodes from the registry and ``peers`` and keeps the usable ones."""

    def __init__(self, chain_id: int, flow_address: str, registry: NodeRegistry | None = None,
                 peers: tuple[str, ...] = (), *, policy: AddressPolicy, standings: Standings | None = None) -> None:
        self.chain_id = chain_id
        self.standings = standings  # auditors' records: slashed operators are skipped
        self.flow_address = flow_address.lower()
        self.registry = registry
        self.peers = tuple(p.rstrip("/") for p in peers)
        self.prober = Prober(policy, chain_id, self.flow_address, reprobe_s=REPROBE_S)
        self.snapshot = Snapshot()
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()

    def candidates(self) -> list[Candidate]:
        """Static peers then registry entries (unreadable shard claims kept as None: the probe
        then reports what the node serves)."""
        found = [Candidate(url, None, STATIC_SOURCE) for url in self.peers]
        if self.registry is not None:
            try:
                entries = registry_entries(self.registry, self.standings)
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

    def refresh(self, wait_s: float | None = None) -> Snapshot:
        """Probe every due candidate, wait at most ``wait_s`` (default one probe deadline) for
        answers, and replace the snapshot."""
        found = self.prober.run(self.candidates(), wait_s)
        nodes = [ShardedNode(u.node.url, u.node.shard, u.latency_ms, u.since, u.source) for u in found.usable]
        for node in nodes:
            self._logged.pop(node.url, None)
        for skipped in found.skipped:
            self._log_skip(skipped)
        snapshot = Snapshot(nodes, found.skipped, time.time())
        with self._lock:
            self.snapshot = snapshot
        return snapshot

    def _log_skip(self, skipped: SkippedNode) -> None:
        if self._logged.get(skipped.url) != skipped.reason:
            self._logged[skipped.url] = skipped.reason
            log.warning("skipping storage node %s (%s): %s", skipped.url, skipped.source, skipped.reason)

    def recheck(self, url: str) -> None:
        """Probe ``url`` again at the next refresh (a call to it failed)."""
        self.prober.recheck(url)

    def close(self) -> None:
        self.prober.close()

    def current(self) -> Snapshot:
        with self._lock:
            return self.snapshot
