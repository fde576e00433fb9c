"""The one download pipeline of zgos storage: size -> locate -> plan -> fetch+verify -> write.

Download (storage.md §5.4): take the file's size from its first ``Flow`` submission (the data
root does not fix the byte length: a node claiming fewer or more bytes could otherwise truncate
or pad a "verified" file), find the nodes that have the file finalized and describe it as the
chain does (a node that disagrees is skipped, logged and scored down), fetch segments in
in parallel (runs of up to ``MAX_FRAMES_PER_REQUEST`` streamed as frames from one node, the network read
overlapping the native hashing of the segments already received), check every segment's proof
against the data root at its position before writing it, fetch a segment that a node did not
send or sent corrupt from the next holder on its own, write into a temporary file beside OUT and
rename it into place only when every segment verified, so OUT is never half-written. Since each
segment is proven at its own index under the root and all segments are fetched, the file as a
whole is verified without a second pass. A downloader without a chain can only require the
nodes to agree on the size (and checks the last segment first, so an absurd size fails at once).

The erasure-coded download (``zgos.storage.erasurecode``) shares the size, locate and write
stages (``verified_locations``, ``atomic_output``) and rebuilds what it cannot fetch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from zgos.runtime.writeback import start_writeback
from zgos.storage.arrivals import Arrivals
from zgos.storage.contracts import FlowContract
from zgos.storage.fasthash import segment_proven, segment_root
from zgos.storage.framefetch import ProvenWrite
from zgos.storage.locations import FileLocation, claimed_size, describes_file
from zgos.storage.nodeclient import (
    MAX_PARALLEL_QUERIES,
    CorruptData,
    NodeConnection,
    StorageError,
    locate,
)
from zgos.storage.scores import PeerScores
from zgos.storage.spec.flow import compute_segment_count
from zgos.storage.spec.frames import MAX_FRAMES_PER_REQUEST
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, Proof
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof, validate_segment
from zgos.storage.spec.shard import compute_flow_segment
from zgos.storage.upload import Progress

log = logging.getLogger(__name__)

MAX_DOWNLOAD_THREADS = 64
# Requests in flight per client core, over all nodes. Each request streams many segments, so
# one per node keeps a node busy; more only take turns on the client's cores to hash and write
# (2 cores, 4 shard hosts on 2.5 Gbit/s links: 4 threads 581 MB/s, 8 535, 16 479).
THREADS_PER_CORE = 2
# A stream asks for as many segments per request as a download (fewer requests cost the node
# less: 0.23 -> 0.15 CPU-s per 256 MiB relayed), yet passes each on as soon as it is proven;
# two requests in flight (32 MiB), so the next is on its way while one is passed on.
STREAM_BATCH_SEGMENTS = MAX_FRAMES_PER_REQUEST
STREAM_WINDOW_SEGMENTS = 2 * STREAM_BATCH_SEGMENTS



def download_threads(workers: int, nodes: int, cores: int) -> int:
    """Requests a download keeps in flight: ``workers`` per node, but no more than
    ``THREADS_PER_CORE`` per client core, and never fewer than one per node."""
    return min(MAX_DOWNLOAD_THREADS, max(nodes, min(workers * nodes, THREADS_PER_CORE * cores)))

@dataclass(frozen=True)
class VerifiedFile:
    """What a download trusts about a file: the root asked for and its byte size, from the
    chain (``size_from == "chain"``) or, without a chain, as every node reporting it agrees."""

    root: bytes
    size: int
    size_from: str


@dataclass(frozen=True)
class DownloadPlan:
    file: VerifiedFile
    seq_by_node: dict[str, int]
    holders: list[list[NodeConnection]]  # per segment index modulo `modulus`, the nodes of its shard
    modulus: int
    threads: int


@dataclass(frozen=True)
class Batch:
    """Segments ``indexes`` of one shard residue, asked of ``node`` in one request."""

    indexes: range
    node: NodeConnection


class Downloader:
    """The download stages against one set of nodes and (optionally) one Flow."""

    def __init__(self, nodes: Sequence[NodeConnection], flow: FlowContract | None, workers: int,
                 scores: PeerScores) -> None:
        self.nodes = list(nodes)
        self.flow = flow
        self.workers = workers
        self.scores = scores

    # --- size and locate -----------------------------------------------------------------

    def size_of(self, root: bytes) -> int | None:
        """The byte size of the file ``root`` from its first Flow submission (None: no chain)."""
        if self.flow is None:
            return None
        first = self.flow.file_of(root)
        if first is None:
            raise StorageError(f"0x{root.hex()} was never submitted to the Flow contract",
                               "check the root (`zg storage info`), or wait for the upload's transaction")
        return first.size

    def verified_locations(self, root: bytes, finalized: bool = True) -> tuple[VerifiedFile, list[FileLocation]]:
        """The file ``root`` (size from the chain) and the nodes that describe it the same way.

        A node whose answer names another root or another size is skipped, logged and scored
        down: it lies about the file. Without a chain the reporting nodes must agree on the size
        (``StorageError`` if they do not); their common size is then the best available."""
        with ThreadPoolExecutor(1) as pool:  # the chain and the nodes are asked at once
            size = pool.submit(self.size_of, root)
            locations = locate(self.nodes, root, finalized=finalized)
            return self.check_locations(root, locations, size.result())

    def check_locations(self, root: bytes, locations: list[FileLocation],
                        size: int | None) -> tuple[VerifiedFile, list[FileLocation]]:
        """The file ``root`` of ``size`` bytes (None: no chain to say) and those of
        ``locations`` that describe it so (see ``verified_locations``, which finds them)."""
        file = VerifiedFile(root, size, "chain") if size is not None else _agreed_size(root, locations)
        agreeing = []
        for loc in locations:
            if describes_file(loc, root, file.size):
                agreeing.append(loc)
            else:
                self.scores.corrupt(loc.node)
                log.warning("storage node %s describes 0x%s as %s bytes, not %d (from the %s): skipped and scored "
                            "down to %d", loc.node, root.hex(), claimed_size(loc, root), file.size, file.size_from,
                            self.scores.score(loc.node))
        return file, agreeing

    # --- plan ----------------------------------------------------------------------------

    def plan(self, root: bytes, located: tuple[VerifiedFile, list[FileLocation]] | None = None) -> DownloadPlan:
        """Where each segment of the finalized file ``root`` can be fetched: found by
        ``verified_locations``, or ``located`` so already. Each node's shard, and whether it
        serves frames, is asked meanwhile (one round trip in all, not four)."""
        with ThreadPoolExecutor(max(1, min(MAX_PARALLEL_QUERIES, len(self.nodes)))) as pool:
            for node in self.nodes:  # failures are skipped: the plan asks again and reports them
                pool.submit(node.shard)
                pool.submit(_serves_frames, node)
            file, locations = located or self.verified_locations(root)
        if not locations:
            raise StorageError(f"no node holds a finalized copy of 0x{root.hex()} ({file.size} bytes per the {file.size_from})",
                               "check the root with `zg storage info`, or wait for the upload to finish")
        seq_by_node = {loc.node: loc.seq for loc in locations}
        start_by_node = {loc.node: loc.start_entry for loc in locations}
        nodes = self._with_shards([n for n in self.nodes if n.url in seq_by_node])
        if not nodes:
            raise StorageError(f"no node holding 0x{root.hex()} reports its shard", "check the nodes, or add nodes")
        # Shards hold flow segments by residue modulo a power of two, so which nodes hold file
        # segment i depends on i modulo the largest num_shard only (one list per residue).
        modulus = max(n.shard().num_shard for n in nodes)
        count = compute_segment_count(file.size)
        holders = [[n for n in nodes if n.shard().holds(compute_flow_segment(start_by_node[n.url], r))]
                   for r in range(modulus)]
        if missing := [i for i in range(min(count, modulus)) if not holders[i]]:
            uncovered = sum(len(range(i, count, modulus)) for i in missing)
            raise StorageError(f"no reachable node holds segment {missing[0]} of 0x{root.hex()} "
                               f"({uncovered} segment(s) uncovered)", "wait for the nodes to sync, or add nodes")
        plan = DownloadPlan(file=file, seq_by_node=seq_by_node, holders=holders, modulus=modulus,
                            threads=download_threads(self.workers, len(nodes), os.cpu_count() or 1))
        if file.size_from == "nodes":  # an absurd claimed size fails here, before any allocation
            try:
                self.fetch_verified(plan, count - 1)
            except StorageError as exc:
                raise download_failed(root, exc) from None
        return plan

    def _with_shards(self, nodes: list[NodeConnection]) -> list[NodeConnection]:
        """The ``nodes`` that report their shard (the others are logged and skipped)."""
        answering = []
        for node in nodes:
            try:
                node.shard()
                answering.append(node)
            except StorageError as exc:
                log.warning("skipping storage node %s: %s", node.url, exc.message)
        return answering

    # --- fetch and verify ----------------------------------------------------------------

    def fetch_verified(self, plan: DownloadPlan, index: int) -> bytes:
        """Segment ``index`` (file bytes only), proof-checked; the next holder is tried when one
        fails or serves corrupt bytes (and is scored down). Raises ``CorruptData`` if any holder
        served corrupt data."""
        errors = []
        candidates = plan.holders[index % plan.modulus]
        turn = index // plan.modulus  # spreads each residue class over its holders
        rotated = [candidates[(turn + attempt) % len(candidates)] for attempt in range(len(candidates))]
        corrupt = False
        for node in sorted(rotated, key=lambda n: self.scores.banned(n.url)):  # banned nodes last
            try:
                data = self._checked(plan, index, *node.get_segment(plan.seq_by_node[node.url], index))
            except InvalidSegment as exc:
                self.scores.corrupt(node.url)
                errors.append(f"{node.url} served corrupt segment {index} ({exc.message})")
                corrupt = True
                continue
            except StorageError as exc:
                errors.append(exc.message)
                corrupt = corrupt or isinstance(exc, CorruptData)
                continue
            return data
        raise (CorruptData if corrupt else StorageError)("; ".join(errors))

    def _checked(self, plan: DownloadPlan, index: int, data: bytes, proof: Proof) -> bytes:
        """Segment ``index``'s file bytes, once its proof checks out (``InvalidSegment`` if not)."""
        root, size = plan.file.root, plan.file.size
        if not segment_proven(data, proof, index, root, size):  # the reference decides what native code does not
            validate_segment(SegmentWithProof(root, data, index, proof, size), root, size, segment_root)
        in_file = size - index * BYTES_PER_SEGMENT
        return data if len(data) <= in_file else data[:in_file]  # only the last segment is padded

    def batches(self, plan: DownloadPlan, size: int) -> list[list[Batch]]:
        """The file's segments as rounds of batches of ``size``: round ``j`` covers the contiguous
        segments ``[j * span, (j + 1) * span)`` (``span`` = ``modulus * size``), one batch per
        residue, each asked of the residue's holders in turn (banned nodes only if all are)."""
        count, span = compute_segment_count(plan.file.size), plan.modulus * size
        rounds = []
        for turn, start in enumerate(range(0, count, span)):
            batch_round = []
            for first in range(start, min(start + plan.modulus, count)):
                holders = plan.holders[first % plan.modulus]
                rotated = [holders[(turn + i) % len(holders)] for i in range(len(holders))]
                node = min(rotated, key=lambda n: self.scores.banned(n.url))  # stable: the turn's first unbanned
                batch_round.append(Batch(range(first, min(start + span, count), plan.modulus), node))
            rounds.append(batch_round)
        return rounds

    def verified_batch(self, plan: DownloadPlan, batch: Batch, out: int | None = None) -> Iterator[tuple[int, bytes | None]]:
        """The batch's segments (file bytes only), each proof-checked, as they arrive: streamed
        from the batch's node, then each it did not send, or the rest after a corrupt one (the
        node is scored down), fetched on its own from every holder in turn (``fetch_verified``,
        whose ``StorageError`` ends the batch when no holder serves a segment intact). Given the
        descriptor ``out``, a streamed segment that native code proves is written there at its
        place and comes as None."""
        sent: set[int] = set()
        node = batch.node
        into = ProvenWrite(plan.file.root, plan.file.size, out)
        if node.fast:
            try:
                with closing(node.get_segments(plan.seq_by_node[node.url], batch.indexes, into)) as frames:
                    for frame in frames:
                        if frame.proven:
                            sent.add(frame.index)
                            yield frame.index, frame.data
                        elif frame.data is not None and frame.proof is not None:
                            checked = self._checked(plan, frame.index, frame.data, frame.proof)
                            sent.add(frame.index)
                            yield frame.index, checked
            except InvalidSegment as exc:
                self.scores.corrupt(node.url)
                log.warning("storage node %s served a corrupt segment (%s): fetching the rest elsewhere", node.url,
                            exc.message)
            except StorageError as exc:
                log.info("storage node %s did not stream segments (%s): fetching them one by one", node.url, exc.message)
        for index in batch.indexes:
            if index not in sent:
                yield index, self.fetch_verified(plan, index)

    # --- write ---------------------------------------------------------------------------

    def download(self, root: bytes, out: Path, progress: Progress | None = None) -> VerifiedFile:
        """Download the file with data root ``root`` to ``out``, verified; atomic."""
        plan = self.plan(root)
        with atomic_output(out, plan.file.size) as handle:

            def fetch(batch: Batch) -> None:
                for index, data in self.verified_batch(plan, batch, handle):
                    if data is not None:  # written while still in the CPU's cache
                        os.pwrite(handle, data, index * BYTES_PER_SEGMENT)
                    if progress:
                        progress(BYTES_PER_SEGMENT if data is None else len(data))
                start = batch.indexes.start * BYTES_PER_SEGMENT  # the batch's run is written: on to disk
                start_writeback(handle, start, (batch.indexes[-1] + 1) * BYTES_PER_SEGMENT - start)

            with ThreadPoolExecutor(plan.threads) as pool:
                # requests as long as a node answers (fewer, cheaper requests), yet one per thread at least
                per_thread = -(-compute_segment_count(plan.file.size) // plan.threads)
                size = min(MAX_FRAMES_PER_REQUEST, max(1, per_thread))
                results = [pool.submit(fetch, batch) for batch_round in self.batches(plan, size) for batch in batch_round]
                failure = next((exc for f in results if (exc := f.exception()) is not None), None)
            if failure is not None:
                raise download_failed(root, failure)
        return plan.file

    def stream(self, root: bytes, window: int = STREAM_WINDOW_SEGMENTS,
               located: tuple[VerifiedFile, list[FileLocation]] | None = None) -> tuple[VerifiedFile, Generator[bytes, None, None]]:
        """The file with data root ``root`` as verified chunks in order (one per segment),
        fetched about ``window`` segments ahead in parallel: each is yielded as soon as its own
        proof checked out and those before it were yielded, so a consumer can pass bytes on at
        once (the first goes out after one segment, not one request). A failure mid-way raises
        from the iterator (the consumer has the verified prefix only). ``located``: see ``plan``."""
        plan = self.plan(root, located)
        return plan.file, self._chunks(plan, window)

    def _chunks(self, plan: DownloadPlan, window: int) -> Generator[bytes, None, None]:
        rounds = deque(self.batches(plan, STREAM_BATCH_SEGMENTS))
        ahead = max(1, window // (plan.modulus * STREAM_BATCH_SEGMENTS))  # rounds in flight
        with ThreadPoolExecutor(plan.threads) as pool:
            pending: deque[list[Arrivals]] = deque()
            try:
                while rounds or pending:
                    while rounds and len(pending) < ahead:
                        pending.append([Arrivals(batch.indexes, pool, partial(self.verified_batch, plan, batch))
                                        for batch in rounds.popleft()])
                    by_index = {index: arrivals for arrivals in pending[0] for index in arrivals.indexes}
                    for index in sorted(by_index):
                        try:
                            chunk = by_index[index].take(index)
                        except StorageError as exc:
                            raise download_failed(plan.file.root, exc) from None
                        yield chunk
                    pending.popleft()
            finally:
                for batch_round in pending:
                    for arrivals in batch_round:
                        arrivals.cancel()


def _serves_frames(node: NodeConnection) -> bool:
    return node.fast


def _agreed_size(root: bytes, locations: list[FileLocation]) -> VerifiedFile:
    """Without a chain: the size every node reporting ``root`` claims (``StorageError`` if
    they disagree or none reports it)."""
    sizes = {claimed for loc in locations if (claimed := claimed_size(loc, root)) is not None}
    if len(sizes) > 1:
        raise StorageError(f"the storage nodes disagree on the size of 0x{root.hex()}: {sorted(sizes)} bytes",
                           "download against the chain (a deployment), which records the true size")
    if not sizes:
        raise StorageError(f"no node holds a finalized file with root 0x{root.hex()}",
                           "check the root with `zg storage info`, or wait for the upload to finish")
    return VerifiedFile(root, sizes.pop(), "nodes")


def download_failed(root: bytes, cause: BaseException) -> StorageError:
    kind = CorruptData if isinstance(cause, CorruptData) else StorageError
    message = cause.message if isinstance(cause, StorageError) else f"{type(cause).__name__}: {cause}"
    return kind(f"download of 0x{root.hex()} failed: {message}", "OUT was not written; another node may have a good copy")


@contextmanager
def atomic_output(out: Path, size: int) -> Generator[int, None, None]:
    """A descriptor of a ``size``-byte temporary file beside ``out``, fsynced and renamed to
    ``out`` only when the block completes, removed otherwise: ``out`` is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        os.ftruncate(handle, size)
        yield handle
        os.fsync(handle)
        os.close(handle)
        handle = -1
        os.replace(tmp_name, out)
    finally:
        if handle >= 0:
            os.close(handle)
        Path(tmp_name).unlink(missing_ok=True)
