"""The one upload pipeline of zgos storage: hash -> submit -> place -> send -> finalize.

Every upload, replicated or erasure-coded, runs these stages (storage.md §5.3, improved):

1. **hash** (``hash_file``): the file tree, on all cores.
2. **submit** (``UploadPipeline.submit``): skip the transaction if the chain (or, without a
   chain, a node) already knows a file with that root and size, else ``Flow.submit`` with the
   exact fee. The result is a ``Submitted`` file: its seq and flow position.
3. **place** (a ``Placement``): which nodes must hold the file. ``ReplicaPlacement`` covers
   every shard ``replicas`` times and replaces a node that drops out; the erasure-coded
   placement (``zgos.storage.erasurecode``) is the partition of shards its stripes are laid on,
   and adds a stage of its own before sending: the parity file, submitted like any file.
4. **send** (``UploadPipeline.send``): wait until the node has synced the entry, ask which
   segments of its shard it already holds, send only the missing ones in parallel.
5. **finalize**: wait until the node reports the file finalized.

``UploadPipeline.deliver`` runs stages 3-5 for a set of ``Payload`` files, node by node in
parallel. Running an upload again after any interruption resumes: nothing a node acknowledged
is re-sent.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eth_account.signers.local import LocalAccount

from zgos.storage.contracts import FlowContract
from zgos.storage.hasher import build_file_tree
from zgos.storage.locations import FileLocation, describes_file
from zgos.storage.nodeclient import NodeConnection, NodeUnavailable, StorageError, locate
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, BYTES_PER_SEGMENT
from zgos.storage.spec.segment import SegmentWithProof
from zgos.storage.spec.shard import compute_first_flow_segment, compute_shard_segments, select_nodes

log = logging.getLogger(__name__)

SEGMENT_RETRIES = 3
BATCH_SEGMENTS = 16  # segments streamed per request to a zgos node (4 MiB)
RETRY_BACKOFF_S = 0.2  # times the attempt number

Progress = Callable[[int], None]  # called with the number of bytes just done


@dataclass(frozen=True)
class Submitted:
    """A file on the flow: its data root, tx seq, byte size and first flow sector."""

    root: bytes
    seq: int
    size: int
    start_entry: int
    tx_hash: str | None = None  # None when it was already on chain

    @property
    def first_segment(self) -> int:
        return compute_first_flow_segment(self.start_entry)

    @classmethod
    def of(cls, location: FileLocation) -> Submitted:
        return cls(location.root, location.seq, location.size, location.start_entry)


@dataclass(frozen=True)
class Payload:
    """One file to send: its bytes on disk, its tree and its place on the flow."""

    path: Path
    tree: FileTree
    file: Submitted


class Placement(Protocol):
    """Stage 3: the nodes that must hold the payloads."""

    def targets(self, done: list[NodeConnection], failed: dict[str, str]) -> list[NodeConnection]:
        """Every node that must hold the file, ``done`` ones first; raises ``StorageError`` when
        the nodes not in ``failed`` (url -> why) cannot hold it."""
        ...


def hash_file(path: Path, tree: FileTree | None = None) -> FileTree:
    """Stage 1: the tree of the non-empty file at ``path`` (``tree`` if already computed)."""
    if not path.is_file():
        raise StorageError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise StorageError(f"{path} is empty", "0G storage does not store empty files")
    return tree or build_file_tree(path)


class ReplicaPlacement:
    """Nodes covering every shard ``replicas`` times; a node that drops out is replaced."""

    def __init__(self, nodes: Sequence[NodeConnection], replicas: int) -> None:
        if replicas < 1:
            raise StorageError("replicas must be at least 1")
        self.nodes = list(nodes)
        self.replicas = replicas

    def targets(self, done: list[NodeConnection], failed: dict[str, str]) -> list[NodeConnection]:
        """Preferring ``done`` nodes; nodes that do not answer are added to ``failed`` (and logged)."""
        usable: list[NodeConnection] = []
        for node in done + [n for n in self.nodes if n not in done and n.url not in failed]:
            try:
                node.shard()
                usable.append(node)
            except StorageError as exc:
                failed[node.url] = exc.message
                log.warning("skipping storage node %s: %s", node.url, exc.message)
        chosen = select_nodes([n.shard() for n in usable], self.replicas)
        if chosen is None:
            shards = ", ".join(f"{n.url} ({n.shard()})" for n in usable) or "none"
            skipped = "; ".join(f"{url}: {why}" for url, why in failed.items())
            raise StorageError(f"the usable storage nodes cannot hold {self.replicas} replica(s) of every shard "
                               f"(usable: {shards}{'; skipped: ' + skipped if skipped else ''})",
                               "start more nodes, pass more --node URLs, or lower --replicas")
        return [usable[i] for i in chosen]


class UploadPipeline:
    """The stages of an upload against one set of nodes, one Flow and one paying account."""

    def __init__(self, nodes: Sequence[NodeConnection], flow: FlowContract | None, account: LocalAccount | None,
                 workers: int) -> None:
        self.nodes = list(nodes)
        self.flow = flow
        self.account = account
        self.workers = workers

    # --- stage 2: submit -----------------------------------------------------------------

    def known_submission(self, tree: FileTree) -> list[FileLocation]:
        """Nodes that already know the file of ``tree`` (same root and size), so it need not be
        submitted again. With a chain the submission must be on it: a node's word is not enough;
        a root first submitted with another length raises, since a download by root would
        return that length rather than this file."""
        if self.flow is not None:
            first = self.flow.file_of(tree.root)
            if first is None:
                return []
            if first.size != tree.size:
                raise StorageError(
                    f"a file with the same data root 0x{tree.root.hex()} but {first.size} bytes (not {tree.size}) "
                    f"was submitted first by {first.submitter}; a download by root returns {first.size} bytes",
                    "the two files differ only in trailing zero bytes; append a byte to store this one",
                )
        return [loc for loc in locate(self.nodes, tree.root, finalized=False) if describes_file(loc, tree.root, tree.size)]

    def submit(self, tree: FileTree, tags: bytes = b"", fee: int | None = None, always: bool = False) -> Submitted:
        """The file on the flow: submitted now, unless it is known already (``always``: a new
        log entry even so, as a KV transaction repeating an earlier one's bytes needs)."""
        known = [] if always else self.known_submission(tree)
        if known:
            return Submitted.of(known[0])
        if self.flow is None or self.account is None:
            raise StorageError("the file is not on chain and no chain account was given")
        result = self.flow.submit(self.account, [tree.submission(tags)], fee)
        entry = result.entries[0]
        return Submitted(tree.root, entry.seq, tree.size, entry.start_entry, result.tx_hash)

    # --- stages 3-5: place, send, finalize -----------------------------------------------

    def deliver(self, payloads: Sequence[Payload], placement: Placement, progress: Progress | None = None,
                wait_finalized: bool = True, failed: dict[str, str] | None = None) -> int:
        """Send every payload to every node ``placement`` picks, in parallel, and wait until
        each has finalized them (if asked); a node that drops out is recorded in ``failed`` and
        placement is asked again. Returns the number of segments sent."""
        failed = {} if failed is None else failed
        sent = 0
        done: list[NodeConnection] = []  # nodes holding (and, if asked, finalized) their shard
        while todo := [n for n in placement.targets(done, failed) if n not in done]:
            with ThreadPoolExecutor(len(todo)) as pool:
                futures = [(node, pool.submit(self._deliver_to, node, payloads, progress, wait_finalized))
                           for node in todo]
            for node, future in futures:
                error = future.exception()
                if isinstance(error, NodeUnavailable):  # partitioned or down: pick another node
                    failed[node.url] = error.message
                    log.warning("storage node %s dropped out of the upload: %s", node.url, error.message)
                elif error is not None:
                    raise error
                else:
                    done.append(node)
                    sent += future.result()
        return sent

    def _deliver_to(self, node: NodeConnection, payloads: Sequence[Payload], progress: Progress | None,
                    wait_finalized: bool) -> int:
        sent = 0
        for payload in payloads:
            node.wait_synced(payload.file.seq)
            sent += self.send(node, payload, progress)
        if wait_finalized:
            for payload in payloads:
                node.wait_finalized(payload.file.seq)
        return sent

    def send(self, node: NodeConnection, payload: Payload, progress: Progress | None = None) -> int:
        """Stage 4: send ``node`` the segments of its shard it lacks; the number sent."""
        tree, file = payload.tree, payload.file
        mine = compute_shard_segments(file.start_entry, tree.num_segments, node.shard())
        held, finalized = node.held_segments(file.seq)
        if finalized:
            held = set(mine)
        todo = [i for i in mine if i not in held]
        if progress:
            progress(sum(_segment_bytes(tree.size, i) for i in mine if i in held))
        batches = [todo[i : i + BATCH_SEGMENTS] for i in range(0, len(todo), BATCH_SEGMENTS)]
        fd = os.open(payload.path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                for _ in pool.map(lambda batch: self._send_batch(node, fd, payload, batch, progress), batches):
                    pass
        finally:
            os.close(fd)
        return len(todo)

    def _send_batch(self, node: NodeConnection, fd: int, payload: Payload, batch: list[int],
                    progress: Progress | None) -> None:
        """Segments ``batch`` in one streamed request to a zgos node; one by one (with retries
        and the refusal rules of ``put_segment``) to any other node, or if the request fails."""
        if node.fast:
            tree = payload.tree
            try:
                node.put_segments(payload.file.seq, [
                    SegmentWithProof(tree.root, read_segment(fd, tree.size, i), i, tree.proof(i), tree.size) for i in batch])
                if progress:
                    progress(sum(_segment_bytes(tree.size, i) for i in batch))
                return
            except StorageError as exc:
                log.info("storage node %s did not take segments %d..%d at once (%s): sending them one by one",
                         node.url, batch[0], batch[-1], exc.message)
        for index in batch:
            self._send_segment(node, fd, payload, index, progress)

    def _send_segment(self, node: NodeConnection, fd: int, payload: Payload, index: int,
                      progress: Progress | None) -> None:
        tree = payload.tree
        segment = SegmentWithProof(tree.root, read_segment(fd, tree.size, index), index, tree.proof(index), tree.size)
        for attempt in range(SEGMENT_RETRIES):
            try:
                node.put_segment(payload.file.seq, segment)
                break
            except NodeUnavailable:
                if attempt == SEGMENT_RETRIES - 1:
                    raise
                time.sleep(RETRY_BACKOFF_S * (attempt + 1))
        if progress:
            progress(_segment_bytes(tree.size, index))


def _segment_bytes(size: int, index: int) -> int:
    """File bytes in segment ``index`` of a ``size``-byte file."""
    return min(BYTES_PER_SEGMENT, size - index * BYTES_PER_SEGMENT)


def read_segment(fd: int, size: int, index: int) -> bytes:
    """Segment bytes as sent on the wire: the last one zero-padded to whole sectors."""
    data = os.pread(fd, BYTES_PER_SEGMENT, index * BYTES_PER_SEGMENT)
    remainder = len(data) % BYTES_PER_SECTOR
    return data + bytes(BYTES_PER_SECTOR - remainder) if remainder else data
