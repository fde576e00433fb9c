"""Peer sync: a node fills its shard of every file from other nodes (storage.md §4.4).

Behaviour:
* Every log entry the node has not finalized is a sync job: the node fetches the segments of its
  shard it lacks from peers with ``zgs_downloadSegmentWithProofByTxSeq``, at most
  ``max_files`` files and ``workers`` segments at once. Each segment goes through the node's own
  upload path (``StorageNode.upload_segment``), so its proof is checked against the data root
  of the on-chain ``Submit`` event before anything is stored; the file finalizes when the node
  holds all its shard's segments.
* Peers come from a discovery round (the NodeRegistry plus the static ``--peers`` list, each
  probed for its shard by ``zgos.storage.discovery.Prober``, which reports and backs off the
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
* Restart repair: before syncing, the node scans its store once: segments whose bytes no
  longer match their root or proof are deleted, and finalized files missing a segment of the
  node's shard are reopened, so the loop above fetches them again.
* Pruning: segments outside the node's shard (left by a shard change) are deleted only from
  files the node holds completely in its new shard, and only ``prune_grace_s`` after the change,
  so a shard change never drops data the node still needs or serves before re-syncing.
"""

from __future__ import annotations

import json
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
from zgos.storage.client import NodeConnection, NodeMisbehaved, StorageError
from zgos.storage.discovery import PeerNode, ProbeRound, SkippedNode
from zgos.storage.fasthash import segment_root as fast_segment_root
from zgos.storage.scores import PeerScores
from zgos.storage.spec.merkle import InvalidProof, Proof
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

    def to_json(self, now: float, timeout_s: float, held: int) -> dict[str, Any]:
        return {"goal": self.goal, "held": held, "fetched": self.fetched, "attempts": self.attempts,
                "elapsedSecs": round(now - self.started, 1), "stuck": self.stuck(now, timeout_s),
                "lastError": self.last_error, "corruptPeers": sorted(self.corrupt_from)}


class SyncedNode(Protocol):
    """What peer sync reads and calls on the node whose shard it fills (``StorageNode``):
    segments go in through the node's own upload path, so every check applies to them."""

    store: Store
    shard: ShardConfig

    def shard_segments(self, entry: LogEntry) -> range: ...
    def missing_segments(self, entry: LogEntry) -> list[int]: ...
    def finalize_if_complete(self, entry: LogEntry) -> bool: ...
    def upload_segment(self, segment: SegmentWithProof, tx_seq: int | None = None) -> bool: ...
    def shard_changed_at(self) -> float | None: ...
    def prune_done(self) -> None: ...


class PeerSync:
    """The thread that fills the node's shard from peers, repairs and prunes its store."""

    def __init__(self, node: SyncedNode, config: SyncConfig, discover: Callable[[], ProbeRound],
                 outbound: AddressPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.config = config
        self.discover = discover
        self.clock = clock
        self.scores = PeerScores(clock)
        self.peers: list[PeerNode] = []
        self.skipped_peers: list[SkippedNode] = []
        self.files: dict[int, FileSync] = {}
        self.first_seen: dict[int, float] = {}
        self.segments_fetched = 0
        self.corrupt_rejected = 0
        self.repaired: dict[str, int] = {"corrupt": 0, "reopened": 0}
        self.pruned = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peer-sync", daemon=True)
        guards: dict[str, Any] = {"deadline_s": PEER_TIMEOUT_S, "max_response_bytes": MAX_PEER_RESPONSE_BYTES}
        self._http = OutboundClient(outbound, **guards)  # announced peers
        self._configured_http = OutboundClient(OPEN_POLICY, **guards)  # --peers: the operator's choice
        self._files_pool = ThreadPoolExecutor(max(1, config.max_files), thread_name_prefix="sync-file")
        self._segments_pool = ThreadPoolExecutor(max(1, config.workers), thread_name_prefix="sync-seg")
        self._next_discovery = 0.0
        self._next_prune = 0.0
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
            self.repair_scan()
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
        if now >= self._next_prune:
            self.prune()
            self._next_prune = now + self.config.prune_interval_s
        if not self.config.enabled:
            return
        open_seqs = self.node.store.unfinalized_seqs()
        with self._lock:
            for seq in list(self.files):
                if seq not in open_seqs and not self.files[seq].running:
                    self.files[seq].done = True
            running = sum(1 for f in self.files.values() if f.running)
        due = []
        with self._lock:
            for seq in open_seqs:
                first = self.first_seen.setdefault(seq, now)
                job = self.files.get(seq)
                if now - first >= self.config.start_delay_s and (job is None or job.done or
                                                                 (not job.running and job.next_try <= now)):
                    due.append((0 if job is None or job.done else job.attempts, seq))
        for _, seq in sorted(due):  # least-tried first: files failing for long never starve new ones
            if running >= self.config.max_files:
                break
            with self._lock:
                job = self.files.get(seq)
                if job is None or job.done:
                    record = self.node.store.tx(seq)
                    if record is None:
                        continue
                    job = FileSync(seq, len(self.node.shard_segments(record.entry)), now)
                    self.files[seq] = job
                job.running = True
            running += 1
            self._files_pool.submit(self._sync_file, job)

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
            peer = NodeConnection(url, self._http_for(url), fast=False)
            try:
                data, proof = peer.get_segment(entry.seq, index)
                segment = SegmentWithProof(entry.data_root, data, index, proof, entry.size)
                validate_segment(segment, entry.data_root, entry.size, fast_segment_root)
            except (InvalidSegment, InvalidProof) as exc:
                self._corrupt(url, entry, index, job, exc.message)
                reasons.append(f"{url}: corrupt ({exc.message})")
                continue
            except NodeMisbehaved as exc:
                self._misbehaved(url, exc.message)
                reasons.append(exc.message)
                continue
            except StorageError as exc:
                if "did not answer" in exc.message:
                    self.scores.unreachable(url, exc.message)
                elif "malformed" in exc.message:
                    self._corrupt(url, entry, index, job, exc.message)
                reasons.append(exc.message)
                continue
            try:
                self.node.upload_segment(segment, entry.seq)
            except ZgError as exc:
                if "already" not in exc.message:  # finalized meanwhile (a client uploaded it)
                    return f"storing segment {index}: {exc.message}"
                return None
            self.scores.good(url)
            with self._lock:
                job.fetched += 1
                self.segments_fetched += 1
            return None
        return "; ".join(reasons)

    def _corrupt(self, url: str, entry: LogEntry, index: int, job: FileSync, why: str) -> None:
        self.scores.corrupt(url, f"served a corrupt segment ({why})")
        with self._lock:
            job.corrupt_from.add(url)
            self.corrupt_rejected += 1
        log.warning("peer %s served a corrupt segment %d of file %d (%s); scored down to %d and avoided",
                    url, index, entry.seq, why, self.scores.score(url))

    # --- restart repair and pruning --------------------------------------------------------

    def repair_scan(self) -> None:
        """Delete stored segments that fail their root or proof; reopen finalized files that
        miss a segment of this node's shard (they are then fetched from peers)."""
        store = self.node.store
        for entry in store.entries():
            bad = []
            for index in store.segment_indexes(entry.seq):
                if not self._segment_intact(entry, index):
                    bad.append(index)
            if bad:
                store.delete_segments(entry.seq, bad)
                self.repaired["corrupt"] += len(bad)
                log.warning("restart scan: %d corrupted segment(s) of file %d deleted (%s); re-fetching from peers",
                            len(bad), entry.seq, bad[:8])
            record = store.tx(entry.seq)
            if record is not None and record.finalized and self.node.missing_segments(entry):
                store.unfinalize(entry.seq)
                self.repaired["reopened"] += 1
                log.warning("restart scan: file %d misses segments of shard %s; re-fetching from peers",
                            entry.seq, self.node.shard)
            elif record is not None and not record.finalized:
                self.node.finalize_if_complete(entry)

    def _segment_intact(self, entry: LogEntry, index: int) -> bool:
        data = self.node.store.segment(entry.seq, index)
        proof_text = self.node.store.segment_proof(entry.seq, index)
        if data is None:
            return True
        if proof_text is None:  # stored before proofs were kept: the full-tree check serves it
            return True
        try:
            proof = Proof.from_json(json.loads(proof_text))
            validate_segment(SegmentWithProof(entry.data_root, data, index, proof, entry.size),
                             entry.data_root, entry.size, fast_segment_root)
        except (InvalidSegment, InvalidProof, ValueError):
            return False
        return True

    def prune(self) -> None:
        """Drop out-of-shard segments of fully held files once the grace period has passed."""
        changed_at = self.node.shard_changed_at()
        if changed_at is None or time.time() - changed_at < self.config.prune_grace_s:
            return
        store = self.node.store
        pending = False  # old-shard data of files not re-synced yet: kept, pruned on a later pass
        for entry in store.entries():
            record = store.tx(entry.seq)
            if record is None:
                continue
            mine = set(self.node.shard_segments(entry))
            extra = [i for i in store.segment_indexes(entry.seq) if i not in mine]
            if extra and not record.finalized:
                pending = True
            elif extra:
                self.pruned += store.delete_segments(entry.seq, extra)
                log.info("pruned %d segment(s) of file %d outside shard %s", len(extra), entry.seq, self.node.shard)
        if not pending:
            self.node.prune_done()

    # --- status --------------------------------------------------------------------------

    def file_status(self, seq: int) -> str | None:
        """0G-style sync state of one file, or None when no sync ran for it."""
        with self._lock:
            job = self.files.get(seq)
        if job is None:
            return None
        held = self.node.store.count_segments(seq)
        if job.stuck(self.clock(), self.config.stuck_timeout_s):
            return f"Stuck ({held}/{job.goal} segments, {job.attempts} attempts): {job.last_error}"
        if job.last_error:
            return f"Failed ({held}/{job.goal} segments): {job.last_error}"
        return f"Syncing ({held}/{job.goal} segments)"

    def info(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            jobs = [j for j in self.files.values() if not j.done]
        jobs = [j for j in jobs if (r := self.node.store.tx(j.seq)) is not None and not r.finalized]
        files = {str(j.seq): j.to_json(now, self.config.stuck_timeout_s, self.node.store.count_segments(j.seq))
                 for j in jobs}
        return {
            "files": files,
            "stuck": sorted(j.seq for j in jobs if j.stuck(now, self.config.stuck_timeout_s)),
            "segmentsFetched": self.segments_fetched,
            "corruptRejected": self.corrupt_rejected,
            "repaired": dict(self.repaired),
            "pruned": self.pruned,
            "peers": [{"url": p.url, "shardConfig": p.shard.to_json(), "score": self.scores.score(p.url),
                       "banned": self.scores.banned(p.url),
                       "backedOffSecs": round(self.scores.backed_off_for(p.url), 1),
                       "lastError": self.scores.reason(p.url)} for p in self.peers],
            "skippedPeers": [s.to_json() for s in self.skipped_peers],
        }


class SyncFailed(ZgError):
    """Some segments of a file could not be fetched this round."""
