"""Finding storage nodes: the on-chain ``NodeRegistry`` plus an optional static ``--peers`` list.

Registry entries are claims by strangers, so every candidate is probed before use
(storage.md §5.2 "Discovery": ``zgs_getShardConfig``, and ``zgs_getStatus`` for the network
identity) and skipped, with the reason, when its URL cannot work, it does not answer, it serves
another network (chain id or Flow address), or the shard it reports differs from the shard it
announced on chain (a node lying about its shard). Callers still verify every byte a node serves.

Probing is bounded whatever the entries do (``Prober``):

* every probe goes through ``zgos.runtime.outbound``: both calls of one probe share one deadline
  (``PROBE_DEADLINE_S``), answers are capped, only addresses the ``AddressPolicy`` allows are
  contacted;
* probes run concurrently, at most ``PROBE_WORKERS`` at once, and a round waits for them at most
  ``wait_s`` (one probe deadline by default), so one bad entry delays discovery by at most one
  probe deadline; a probe still running then is reported, and its answer used next round;
* a failing entry is scored down and backed off before it is probed again: briefly when it
  failed fast (a closed port, a wrong answer), exponentially up to ``MAX_BACKOFF_S`` when the
  guard had to cut it (deadline, size cap, redirects) -- a tarpit costs one probe per backoff;
* every skipped entry is reported with its reason, score, failures and time to the next probe
  (the indexer's ``/node/status``, the node's ``admin_getPeers``/sync info);
* with ``reprobe_s`` (the indexer's), an entry that answered is trusted that long before it is
  probed again, unless its registry claim changes or its owner asks for a ``recheck`` (a call
  to it failed): a round then costs one registry read plus the new, changed, failing and stale
  entries, not a probe of every node in the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from zgos.chain.registry import NodeKind, NodeRegistry, RegisteredNode, url_problem
from zgos.chain.standing import Standings, rank_by_standing
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.netutil import JsonRpcFailure, JsonRpcGuarded, JsonRpcUnreachable
from zgos.runtime.outbound import OutboundClient, within
from zgos.storage.nodeclient import request_shard_config, request_status
from zgos.storage.scores import compute_backoff_s
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

PROBE_DEADLINE_S = 3.0  # both calls of one probe, total
PROBE_WORKERS = 16
PROBE_GRACE_S = 0.25  # a probe cut at its deadline reports a moment later
MAX_PROBE_RESPONSE_BYTES = 64 * 1024  # a shard config or a status is a few hundred bytes
SUCCESS_REWARD = 1
FAILURE_PENALTY = 1
MISBEHAVING_PENALTY = 10
MAX_SCORE = 10
STATIC_SOURCE = "--peers"


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

    @property
    def announced(self) -> bool:
        """Read from the chain (a stranger's claim), not configured by the operator (``--peers``):
        only announced URLs are held to the ``AddressPolicy``; both get every other guard."""
        return self.source != STATIC_SOURCE


@dataclass(frozen=True)
class ProbeFailure:
    """Why a candidate was skipped; ``misbehaved`` when the outbound guard had to cut it."""

    reason: str
    misbehaved: bool = False


def probe(http: OutboundClient, candidate: Candidate, chain_id: int | None = None,
          flow_address: str | None = None, deadline_s: float = PROBE_DEADLINE_S) -> PeerNode | ProbeFailure:
    """The node as a ``PeerNode``, or why it must be skipped; both calls end by ``deadline_s``."""
    url = candidate.url.rstrip("/")
    problem = url_problem(url)
    if problem is not None:
        return ProbeFailure(problem)
    try:
        with within(deadline_s):
            shard = request_shard_config(http, url)
            identity = None
            if chain_id is not None or flow_address is not None:
                status = request_status(http, url)
                identity = status.get("networkIdentity", {}) if isinstance(status, dict) else {}
    except JsonRpcGuarded as exc:
        return ProbeFailure(f"unreachable ({exc})", misbehaved=True)
    except JsonRpcUnreachable as exc:
        return ProbeFailure(f"unreachable ({exc})")
    except (JsonRpcFailure, InvalidShardConfig) as exc:
        return ProbeFailure(f"not a storage node ({str(exc)[:120]})")
    if identity is not None:
        if not isinstance(identity, dict):
            return ProbeFailure("not a storage node (networkIdentity is not an object)")
        if chain_id is not None and identity.get("chainId") != chain_id:
            return ProbeFailure(f"serves chain {str(identity.get('chainId'))[:40]}, not {chain_id}")
        served = str(identity.get("flowAddress", "")).lower()
        if flow_address is not None and served != flow_address.lower():
            return ProbeFailure(f"serves Flow {served[:60] or '?'}, not {flow_address}")
    if candidate.claimed is not None and candidate.claimed != shard:
        return ProbeFailure(f"announced shard {candidate.claimed} on chain but serves shard {shard}")
    return PeerNode(url, shard)


@dataclass
class ProbeRecord:
    """What the prober knows about one URL."""

    url: str
    source: str
    node: PeerNode | None = None  # set while the last probe succeeded
    latency_ms: int = 0
    since: int = 0  # unix time since when it answers without interruption
    reason: str = ""
    failures: int = 0  # in a row
    score: int = 0
    next_probe_at: float = 0.0  # clock() time; 0 = at the next round
    claimed: ShardConfig | None = None  # the registry claim it was last probed for


@dataclass(frozen=True)
class UsableNode:
    node: PeerNode
    source: str
    latency_ms: int
    since: int


@dataclass(frozen=True)
class SkippedNode:
    url: str
    source: str
    reason: str
    score: int = 0
    failures: int = 0
    retry_in_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "source": self.source, "reason": self.reason, "score": self.score,
                "failures": self.failures, "retryInSecs": round(self.retry_in_s, 1)}


@dataclass(frozen=True)
class ProbeRound:
    usable: list[UsableNode] = field(default_factory=list)
    skipped: list[SkippedNode] = field(default_factory=list)

    @property
    def peers(self) -> list[PeerNode]:
        return [u.node for u in self.usable]


class Prober:
    """Probes candidates concurrently and remembers how each did (score, backoff, reason).

    Long-lived owners (the indexer, a node's peer sync) keep one and call ``run`` every round;
    ``discover`` makes one for a single round. ``close`` never waits for a probe in flight.
    ``reprobe_s``: how long an entry that answered is trusted before it is probed again (0:
    every round).
    """

    def __init__(self, policy: AddressPolicy, chain_id: int | None = None, flow_address: str | None = None, *,
                 deadline_s: float = PROBE_DEADLINE_S, workers: int = PROBE_WORKERS,
                 clock: Callable[[], float] = time.monotonic, reprobe_s: float = 0.0) -> None:
        self.chain_id = chain_id
        self.flow_address = flow_address
        self.deadline_s = deadline_s
        self.reprobe_s = reprobe_s
        self.clock = clock
        limits: dict[str, Any] = {"deadline_s": deadline_s, "max_response_bytes": MAX_PROBE_RESPONSE_BYTES,
                                  "max_connections": 2 * workers}
        self.http = OutboundClient(policy, **limits)
        self.configured_http = OutboundClient(OPEN_POLICY, **limits)  # --peers: the operator's own choice
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="probe")
        self._inflight: dict[str, Future[tuple[PeerNode | ProbeFailure, int]]] = {}
        self._records: dict[str, ProbeRecord] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()
        self.configured_http.close()

    def _probe(self, candidate: Candidate) -> tuple[PeerNode | ProbeFailure, int]:
        started = time.monotonic()
        http = self.http if candidate.announced else self.configured_http
        outcome = probe(http, candidate, self.chain_id, self.flow_address, self.deadline_s)
        return outcome, int((time.monotonic() - started) * 1000)

    def _harvest(self) -> None:
        """Apply the answers of finished probes."""
        now = self.clock()
        with self._lock:
            for url, future in list(self._inflight.items()):
                if not future.done():
                    continue
                del self._inflight[url]
                record = self._records[url]
                try:
                    outcome, latency_ms = future.result()
                except Exception as exc:  # a bug in a probe must not stop discovery
                    outcome, latency_ms = ProbeFailure(f"probe failed ({type(exc).__name__})"), 0
                if isinstance(outcome, PeerNode):
                    record.node, record.latency_ms, record.reason, record.failures = outcome, latency_ms, "", 0
                    record.score = min(MAX_SCORE, record.score + SUCCESS_REWARD)
                    record.since = record.since or int(time.time())
                    record.next_probe_at = now + self.reprobe_s if self.reprobe_s else 0.0
                else:
                    record.node, record.since, record.reason = None, 0, outcome.reason
                    record.failures += 1
                    record.score -= MISBEHAVING_PENALTY if outcome.misbehaved else FAILURE_PENALTY
                    record.next_probe_at = now + compute_backoff_s(record.failures, outcome.misbehaved)

    def run(self, candidates: Sequence[Candidate], wait_s: float | None = None) -> ProbeRound:
        """Probe every due candidate (not backed off, not already in flight), wait up to
        ``wait_s`` (default: one probe deadline) for the answers, and report every candidate."""
        self._harvest()
        now = self.clock()
        unique: dict[str, Candidate] = {}
        for candidate in candidates:
            unique.setdefault(candidate.url.rstrip("/"), candidate)
        started: list[Future[tuple[PeerNode | ProbeFailure, int]]] = []
        with self._lock:
            for url, candidate in unique.items():
                if url_problem(url) is not None or url in self._inflight:
                    continue
                record = self._records.setdefault(url, ProbeRecord(url, candidate.source))
                changed = record.claimed != candidate.claimed
                record.source, record.claimed = candidate.source, candidate.claimed
                if record.next_probe_at > now and not changed:
                    continue
                future = self._pool.submit(self._probe, candidate)
                self._inflight[url] = future
                started.append(future)
        if started:
            wait(started, timeout=self.deadline_s + PROBE_GRACE_S if wait_s is None else wait_s)
        self._harvest()
        return self._report(unique)

    def _report(self, unique: dict[str, Candidate]) -> ProbeRound:
        now = self.clock()
        result = ProbeRound()
        with self._lock:
            for url, candidate in unique.items():
                problem = url_problem(url)
                record = self._records.get(url)
                if problem is not None:
                    result.skipped.append(SkippedNode(url, candidate.source, problem))
                elif record is not None and record.node is not None:
                    result.usable.append(UsableNode(record.node, candidate.source, record.latency_ms, record.since))
                elif record is None or not record.reason:
                    result.skipped.append(SkippedNode(url, candidate.source,
                                                      f"no answer yet (probe deadline {self.deadline_s:g} s)"))
                else:
                    result.skipped.append(SkippedNode(url, candidate.source, record.reason, record.score,
                                                      record.failures, max(0.0, record.next_probe_at - now)))
        return result

    def recheck(self, url: str) -> None:
        """Probe ``url`` at the next round, whatever its ``reprobe_s`` or backoff says (a call
        to it just failed)."""
        with self._lock:
            record = self._records.get(url.rstrip("/"))
            if record is not None:
                record.next_probe_at = 0.0

    def score(self, url: str) -> int:
        with self._lock:
            record = self._records.get(url.rstrip("/"))
            return record.score if record is not None else 0


def registry_entries(registry: NodeRegistry, standings: Standings | None) -> list[RegisteredNode]:
    """The announced storage nodes, minus those auditors slashed, negatively scored ones last."""
    entries = registry.nodes(NodeKind.STORAGE)
    if standings is None:
        return entries
    by_operator = {e.operator.lower(): e for e in entries}
    return [by_operator[o.lower()] for o in rank_by_standing([e.operator for e in entries], standings())]


def useful_candidates(found: Sequence[Candidate], shard: ShardConfig) -> list[Candidate]:
    """The candidates that may hold some of ``shard``'s segments: peer sync asks a peer only
    for segments of its own shard, so a registry entry whose claimed shard does not intersect
    it is never probed (each node then probes the few nodes of its shard, not the whole
    network); static peers and unreadable claims are kept (their probe says what they serve)."""
    return [c for c in found if c.claimed is None or c.claimed.intersects(shard)]


def candidates(registry: NodeRegistry | None, peers: Sequence[str] = (), standings: Standings | None = None
               ) -> list[Candidate]:
    """Registry entries then static peers, each URL once. A registry entry whose shard claim is
    malformed is kept with no claim: the probe then reports what the node serves."""
    found: dict[str, Candidate] = {}
    if registry is not None:
        for node in registry_entries(registry, standings):
            try:
                claimed: ShardConfig | None = ShardConfig(node.shard_id, node.num_shard)
            except InvalidShardConfig:
                claimed = None
            found.setdefault(node.url.rstrip("/"), Candidate(node.url, claimed, f"registry (operator {node.operator})"))
    for url in peers:
        found.setdefault(url.rstrip("/"), Candidate(url, None, STATIC_SOURCE))
    return list(found.values())


def discover(registry: NodeRegistry | None, peers: Sequence[str] = (), *, policy: AddressPolicy,
             exclude: Sequence[str] = (), chain_id: int | None = None, flow_address: str | None = None,
             deadline_s: float = PROBE_DEADLINE_S, standings: Standings | None = None) -> list[PeerNode]:
    """Usable storage nodes from the registry and ``peers`` (minus ``exclude``), probed once in
    parallel; returns within about one probe deadline; each skipped one is logged with its reason."""
    excluded = {url.rstrip("/") for url in exclude}
    todo = [c for c in candidates(registry, peers, standings) if c.url.rstrip("/") not in excluded]
    if not todo:
        return []
    prober = Prober(policy, chain_id, flow_address, deadline_s=deadline_s)
    try:
        found = prober.run(todo)
    finally:
        prober.close()
    for skipped in found.skipped:
        log.warning("skipping storage node %s from %s: %s", skipped.url, skipped.source, skipped.reason)
    return found.peers
