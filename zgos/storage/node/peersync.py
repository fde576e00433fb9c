"""Peer sync: a node fills its shard of every file from other nodes (storage.md §4.4).

Behaviour:
* Every log entry the node has not finalized is a sync job: the node fetches the segments of its
  shard it lacks from peers with ``zgs_downloadSegmentWithProofByTxSeq``, at most
  ``max_files`` files and ``workers`` segments at once. Each segment goes through the node's own
  upload path (``StorageNode.upload_segment``), so its proof is checked against the data root
  of the on-chain ``Submit`` event before anything is stored; the file finalizes when the node
  holds all its shard's segments.
* Peers come from a discovery round (the NodeRegistry entries whose claimed shard intersects
  this node's, plus the static ``--peers`` list, each probed for its shard by ``zgos.storage.discovery.Prober``, which reports and backs off the
  entries it skips), refreshed every ``discovery_interval_s``. For a segment, only peers whose
  shard holds it are asked, best score first. A peer that serves a segment failing its proof
  is scored down and avoided for ``BAN_S`` (asked only when no other peer holds the segment);
  a peer the outbound guard had to cut (deadline, size cap) is scored down and not asked until
  its backoff ends; an unreachable peer is scored down a little; a peer that simply lacks the
  data is not. Every call to a peer is guarded (``zgos.runtime.outbound``): a total deadline,
  ``MAX_PEER_RESPONSE_BYTES`` per answer, and the node's address policy for announced peers.
* A file that fails is retried with exponential backoff (capped at ``MAX_RETRY_S``); a file
  still incomplete ``stuck_timeout_s`` after its sync began is reported as stuck in
  ``admin_getSyncStatus`` / ``admin_getSyncInfo`` and keeps being retried: sync never stalls
  silently.
* Before the loop starts, the node's ``RestartRepair`` scans its store once (``repair.py``);
  each tick runs the ``Pruner`` when due (``pruner.py``). The status JSON of all three is built
  in ``syncstatus.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from zgos.core.errors import ZgError
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcGuarded,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import (
    CorruptData,
    NodeConnection,
    NodeMisbehaved,
    NodeUnavailable,
    StorageError,
)
from zgos.storage.discovery import PeerNode, ProbeRound, SkippedNode
from zgos.storage.fasthash import segment_root as fast_segment_root
from zgos.storage.node.errors import AlreadyFinalized
from zgos.storage.node.pruner import Pruner
from zgos.storage.node.repair import RestartRepair
from zgos.storage.scores import PeerScores
from zgos.storage.spec.merkle import InvalidProof
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof, validate_segment
from zgos.storage.spec.shard import compute_flow_segment

if TYPE_CHECKING:
    from zgos.storage.contracts import LogEntry
    from zgos.storage.node.store import Store
    from zgos.storage.spec.shard import ShardConfig

log = logging.getLogger(__name__)

PEER_TIMEOUT_S = 15.0  # 0G: 15 s download timeout; here the total time of one call
INFO_TIMEOUT_S = 3.0
MAX_PEER_RESPONSE_BYTES = 1024 * 1024  # a 256 KiB segment is ~350 KB as JSON-RPC
TICK_S = 0.2
MIN_RETRY_S = 0.5
MAX_RETRY_S = 30.0


@dataclass(frozen=True)
class SyncConfig:
    """Peer sync settings of one node."""

    peers: tuple[str, ...] = ()  # static peer URLs (private networks)
    registry_address: str | None = None  # NodeRegistry to discover peers from
    self_url: str | None = None  # this node's own URL, never its own peer
    enabled: bool = True
    workers: int = 4  # segments fetched at once
    max_files: int = 4  # files synced at once
    start_delay_s: float = 1.0  # let the uploading client go first
    stuck_timeout_s: float = 120.0
    discovery_interval_s: float = 10.0
    prune_grace_s: float = 600.0
    prune_interval_s: float = 10.0


@dataclass
class FileSync:
    """Progress of one file's sync, as shown in the admin status."""

    seq: int
    goal: int  # segments of the node's shard
    started: float
    fetched: int = 0
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""
    running: bool = False
    done: bool = False
    corrupt_from: set[str] = field(default_factory=set)

    def stuck(self, now: float, timeout_s: float) -> bool:
        return not self.done and now - self.started > timeout_s


class SyncedNode(Protocol):
    """What peer sync reads and calls on the node whose shard it fills (``StorageNode``):
    segments go in through the node's own upload path, so every check applies to them."""

    store: Store
    shard: ShardConfig

    def shard_segments(self, entry: LogEntry) -> range: ...
    def missing_segments(self, entry: LogEntry) -> list[int]: ...
    def finalize_if_complete(self, entry: LogEntry) -> bool: ...
    def upload_segment(self, segment: SegmentWithProof, tx_seq: int | None = None) -> bool: ...


class PeerSync:
    """The thread that fills the node's shard from peers; it runs the restart ``repair`` once
    before syncing and the ``pruner`` when due."""

    def __init__(self, node: SyncedNode, config: SyncConfig, discover: Callable[[], ProbeRound],
                 outbound: AddressPolicy, *, repair: RestartRepair, pruner: Pruner,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.config = config
        self.repair = repair
        self.pruner = pruner
        self.discover = discover
        self.clock = clock
        self.scores = PeerScores(clock)
        self.peers: list[PeerNode] = []
        self.skipped_peers: list[SkippedNode] = []
        self.files: dict[int, FileSync] = {}
        self.first_seen: dict[int, float] = {}
        self.segments_fetched = 0
        self.corrupt_rejected = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peer-sync", daemon=True)
        guards: dict[str, Any] = {"deadline_s": PEER_TIMEOUT_S, "max_response_bytes": MAX_PEER_RESPONSE_BYTES}
        self._http = OutboundClient(outbound, **guards)  # announced peers
        self._configured_http = OutboundClient(OPEN_POLICY, **guards)  # --peers: the operator's choice
        self._files_pool = ThreadPoolExecutor(max(1, config.max_files), thread_name_prefix="sync-file")
        self._segments_pool = ThreadPoolExecutor(max(1, config.workers), thread_name_prefix="sync-seg")
        self._next_discovery = 0.0
        self.scanned = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._files_pool.shutdown(wait=False, cancel_futures=True)
        self._segments_pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        self._configured_http.close()

    def _http_for(self, url: str) -> OutboundClient:
        configured = {p.rstrip("/") for p in self.config.peers}
        return self._configured_http if url.rstrip("/") in configured else self._http

    # --- loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.repair.scan()
        except Exception:
            log.exception("restart scan failed; continuing with sync")
        self.scanned.set()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must never die: log and carry on
                log.exception("peer sync step failed")
            self._stop.wait(TICK_S)

    def step(self) -> None:
        now = self.clock()
        if now >= self._next_discovery:
            self._refresh_peers()
            self._next_discovery = now + self.config.discovery_interval_s
        self.pruner.run_due(now)
        if self.config.enabled:
            self._start_due_files(now)

    def _start_due_files(self, now: float) -> None:
        """Start a sync job for each open file that is due, least-tried first (files failing
        for long never starve new ones), at most ``max_files`` running."""
        open_seqs = self.node.store.unfinalized_seqs()
        with self._lock:
            for seq, sync in self.files.items():
                if seq not in open_seqs and not sync.running:
                    sync.done = True
            running = sum(1 for f in self.files.values() if f.running)
            due = []
            for seq in open_seqs:
                known = self.files.get(seq)
                if self._is_due(seq, known, now):
                    due.append((0 if known is None or known.done else known.attempts, seq))
        due.sort()
        for _, seq in due:
            if running >= self.config.max_files:
                break
            claimed = self._claim(seq, now)
            if claimed is not None:
                running += 1
                self._files_pool.submit(self._sync_file, claimed)

    def _is_due(self, seq: int, job: FileSync | None, now: float) -> bool:
        first = self.first_seen.setdefault(seq, now)
        if now - first < self.config.start_delay_s:
            return False
        return job is None or job.done or (not job.running and job.next_try <= now)

    def _claim(self, seq: int, now: float) -> FileSync | None:
        """The job of ``seq`` marked running (a new one after a finished one); None if the
        file was forgotten by a reorganisation."""
        with self._lock:
            job = self.files.get(seq)
            if job is None or job.done:
                record = self.node.store.tx(seq)
                if record is None:
                    return None
                job = FileSync(seq, len(self.node.shard_segments(record.entry)), now)
                self.files[seq] = job
            job.running = True
            return job

    def _refresh_peers(self) -> None:
        try:
            found = self.discover()
        except (ZgError, httpx.HTTPError, OSError) as exc:
            log.warning("peer discovery failed: %s", exc)
            return
        self_url = (self.config.self_url or "").rstrip("/")
        self.peers = [p for p in found.peers if p.url.rstrip("/") != self_url]
        self.skipped_peers = found.skipped

    # --- one file ------------------------------------------------------------------------

    def _sync_file(self, job: FileSync) -> None:
        try:
            record = self.node.store.tx(job.seq)
            if record is None:  # forgotten by a reorganisation
                return
            missing = self.node.missing_segments(record.entry)
            if not missing:
                self.node.finalize_if_complete(record.entry)
                return
            job.attempts += 1
            sources = self._sources(record.entry)
            if not sources:
                raise SyncFailed(f"no known peer has file {job.seq} ({len(self.peers)} peers asked)")
            errors = [e for e in self._segments_pool.map(lambda i: self._fetch(record.entry, i, job, sources), missing) if e]
            if errors:
                raise SyncFailed(f"{len(errors)} of {len(missing)} segments not fetched; first: {errors[0]}")
            job.last_error = ""
        except Exception as exc:
            job.last_error = str(exc)[:300]
            delay = min(MAX_RETRY_S, MIN_RETRY_S * 2 ** min(job.attempts, 10))
            job.next_try = self.clock() + delay
            if job.stuck(self.clock(), self.config.stuck_timeout_s):
                log.warning("sync of file %d is stuck for %.0fs: %s; retrying in %.1fs",
                            job.seq, self.clock() - job.started, job.last_error, delay)
            else:
                log.info("sync of file %d: %s; retrying in %.1fs", job.seq, job.last_error, delay)
        finally:
            job.running = False

    def _sources(self, entry: LogEntry) -> list[PeerNode]:
        """Peers that have some data of the file (one ``zgs_getFileInfoByTxSeq`` each, asked in
        parallel; peers in backoff are not asked)."""
        mine = self.node.shard
        asked = [p for p in self.peers if p.shard.intersects(mine) and self.scores.backed_off_for(p.url) == 0]
        answers = self._segments_pool.map(lambda peer: self._has_file(peer, entry.seq), asked)
        return [peer for peer, has in zip(asked, answers, strict=True) if has]

    def _has_file(self, peer: PeerNode, seq: int) -> bool:
        try:
            info = call_jsonrpc(self._http_for(peer.url), peer.url, "zgs_getFileInfoByTxSeq", [seq],
                                timeout_s=INFO_TIMEOUT_S)
        except JsonRpcGuarded as exc:
            self._misbehaved(peer.url, str(exc))
            return False
        except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
            self.scores.unreachable(peer.url, f"unreachable ({exc})")
            return False
        except JsonRpcErrorAnswer:
            return False
        return isinstance(info, dict) and bool(info.get("finalized") or info.get("uploadedSegNum"))

    def _misbehaved(self, url: str, why: str) -> None:
        self.scores.misbehaved(url, why)
        log.warning("peer %s: %s; scored down to %d and not asked for %.0f s",
                    url, why, self.scores.score(url), self.scores.backed_off_for(url))

    def _fetch(self, entry: LogEntry, index: int, job: FileSync, sources: list[PeerNode]) -> str | None:
        """Fetch, verify and store segment ``index``; the reason it failed, or None."""
        flow_segment = compute_flow_segment(entry.start_entry, index)
        holders = {p.url: p for p in sources if p.shard.holds(flow_segment)}
        if not holders:
            return f"no known peer holds flow segment {flow_segment}"
        reasons = []
        for url in self.scores.rank(list(holders)):
            if self._stop.is_set():
                return "stopping"
            try:
                segment = self._download(url, entry, index, job)
            except StorageError as exc:
                reasons.append(exc.message)
                continue
            try:
                self.node.upload_segment(segment, entry.seq)
            except AlreadyFinalized:  # finalized meanwhile (a client uploaded it)
                return None
            except ZgError as exc:
                return f"storing segment {index}: {exc.message}"
            self.scores.good(url)
            with self._lock:
                job.fetched += 1
                self.segments_fetched += 1
            return None
        return "; ".join(reasons)

    def _download(self, url: str, entry: LogEntry, index: int, job: FileSync) -> SegmentWithProof:
        """Segment ``index`` from the peer at ``url``, checked against the file's root; a
        ``StorageError`` naming why not, after scoring the peer for it."""
        try:
            data, proof = NodeConnection(url, self._http_for(url), fast=False).get_segment(entry.seq, index)
            segment = SegmentWithProof(entry.data_root, data, index, proof, entry.size)
            validate_segment(segment, entry.data_root, entry.size, fast_segment_root)
        except (InvalidSegment, InvalidProof, CorruptData) as exc:
            self._corrupt(url, entry, index, job, exc.message)
            reason = exc.message if isinstance(exc, CorruptData) else f"{url}: corrupt ({exc.message})"
            raise StorageError(reason) from None
        except NodeMisbehaved as exc:
            self._misbehaved(url, exc.message)
            raise
        except NodeUnavailable as exc:
            self.scores.unreachable(url, exc.message)
            raise
        return segment

    def _corrupt(self, url: str, entry: LogEntry, index: int, job: FileSync, why: str) -> None:
        self.scores.corrupt(url, f"served a corrupt segment ({why})")
        with self._lock:
            job.corrupt_from.add(url)
            self.corrupt_rejected += 1
        log.warning("peer %s served a corrupt segment %d of file %d (%s); scored down to %d and avoided",
                    url, index, entry.seq, why, self.scores.score(url))

    def file_job(self, seq: int) -> FileSync | None:
        with self._lock:
            return self.files.get(seq)

    def open_jobs(self) -> list[FileSync]:
        """The jobs of files not finalized yet."""
        with self._lock:
            jobs = [j for j in self.files.values() if not j.done]
        return [j for j in jobs if (r := self.node.store.tx(j.seq)) is not None and not r.finalized]


class SyncFailed(ZgError):
    """Some segments of a file could not be fetched this round."""
