"""Erasure coding as stages of the storage pipelines (``zgos.storage.upload``/``download``).

The layout rule is ``zgos.storage.spec.erasure`` (pure); these are the stages around it:

* **place** (``ErasurePlacement``): the live nodes whose shards partition the flow are the
  placement groups; a ``k+m`` upload needs ``k+m`` of them (checked before paying); every live
  node is sent the data and parity segments of its shard.
* **encode** (``encode_parity``): lay out stripes from the data file's flow position, encode
  parity with zfec (systematic Reed-Solomon) into a parity file of at least ``n`` segments, and
  submit it like any file (the Flow aligns it to ``n`` segments).
* **check** (``check_record``): the registry holds at most the file owner's record; before
  using it every reader checks that it fits the file (its recorder is the data root's
  submitter, k+m and the groups give a layout, the parity file's on-chain size is the
  layout's) and otherwise treats the file as plain (``InvalidRecord``).
* **rebuild** (``rebuild_into``): fetch every data segment from a node of its shard,
  proof-checked against the data root; rebuild a missing one from any ``k`` pieces of its
  stripe (parity pieces proof-checked against the parity root); then check the whole file
  against the data root (the rebuilt segments included) before it is renamed into place.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zfec

from zgos.storage.contracts import ErasureRecord, FileRecord, FlowContract
from zgos.storage.fasthash import segment_root
from zgos.storage.hasher import build_file_tree
from zgos.storage.locations import Holding
from zgos.storage.nodeclient import MAX_PARALLEL_QUERIES, CorruptData, NodeConnection, StorageError
from zgos.storage.spec.erasure import (
    PIECE_BYTES,
    ErasureParams,
    InvalidLayout,
    StripeLayout,
    compute_stripe_layout,
    is_valid_parity_start,
    select_partition,
)
from zgos.storage.spec.flow import (
    compute_padded_segment_sectors,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, PromoteTree, Proof
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_padding_segment_root,
    compute_segment_byte_length,
    validate_segment,
)
from zgos.storage.spec.shard import ShardConfig
from zgos.storage.upload import Payload, Submitted, UploadPipeline

log = logging.getLogger(__name__)

MAX_THREADS = 64

LiveNodes = list[tuple[NodeConnection, ShardConfig]]
Holdings = dict[str, list[Holding | None]]  # node url -> what it holds of each file asked about


class InvalidRecord(StorageError):
    """An erasure record that does not fit its file; readers treat the file as plain."""


def live_shards(nodes: list[NodeConnection]) -> tuple[LiveNodes, list[str]]:
    """(node, shard) of every node that answers; URLs of the others."""
    live, dead, _ = survey(nodes, [])
    return live, dead


def survey(nodes: list[NodeConnection], roots: Sequence[bytes]) -> tuple[LiveNodes, list[str], Holdings]:
    """(node, shard) of every node that answers, and what it holds of each of ``roots``
    (``NodeConnection.holdings``), every node asked at once; URLs of the others."""
    def ask(node: NodeConnection) -> tuple[ShardConfig, list[Holding | None]] | None:
        try:
            return node.holdings(roots)
        except StorageError as exc:
            log.warning("storage node %s is not usable: %s", node.url, exc)
            return None

    with ThreadPoolExecutor(max(1, min(MAX_PARALLEL_QUERIES, len(nodes)))) as pool:
        answers = list(pool.map(ask, nodes))
    live = [(n, a[0]) for n, a in zip(nodes, answers, strict=True) if a is not None]
    dead = [n.url for n, a in zip(nodes, answers, strict=True) if a is None]
    return live, dead, {n.url: a[1] for n, a in zip(nodes, answers, strict=True) if a is not None}


class ErasurePlacement:
    """The placement stage of a ``k+m`` upload: every live node, whose shards must partition
    the flow into at least ``k+m`` groups; a node dropping out fails the upload (run it again
    to resume)."""

    def __init__(self, live: LiveNodes, params: ErasureParams) -> None:
        configs = [s for _, s in live]
        chosen = select_partition(configs)
        if chosen is None:
            raise InvalidLayout(f"the {len(live)} live nodes' shards {sorted({str(c) for c in configs})} do not "
                                "cover every flow segment exactly", "run nodes whose shards cover 0..n-1 (e.g. --shard i/8)")
        self.live = live
        self.params = params
        self.groups = tuple(configs[i] for i in chosen)
        if len(self.groups) < params.pieces:  # check before paying for anything
            compute_stripe_layout(params, 0, 1, self.groups)

    def targets(self, done: list[NodeConnection], failed: dict[str, str]) -> list[NodeConnection]:
        if failed:
            url, why = next(iter(failed.items()))
            raise StorageError(f"storage node {url} dropped out of the erasure-coded upload: {why}",
                               "run the upload again when the node is back: it resumes")
        return [node for node, _ in self.live]

    def layout(self, data: Submitted) -> StripeLayout:
        return compute_stripe_layout(self.params, data.first_segment, compute_segment_count(data.size), self.groups)


def encode_parity(uploads: UploadPipeline, data: Payload, layout: StripeLayout, scratch: Path,
                  fee: int | None) -> Payload:
    """The encode stage: the parity file of ``data`` under ``layout`` in ``scratch``, hashed
    and submitted; its flow position must keep its pieces on their own groups."""
    parity_path = scratch / "parity"
    write_parity_file(data.path, layout, parity_path)
    tree = build_file_tree(parity_path)
    parity = uploads.submit(tree, b"", fee)
    if not is_valid_parity_start(parity.first_segment, layout.groups):
        raise StorageError(f"the parity file landed at flow segment {parity.first_segment}, not a multiple "
                           f"of {layout.modulus}; its pieces would share nodes", "upload again")
    return Payload(parity_path, tree, parity)


def check_record(record: ErasureRecord, on_chain: dict[str, FileRecord | None], data: Submitted) -> StripeLayout:
    """The stripe layout ``record`` gives ``data``, checked to fit it and the ``"data"`` and
    ``"parity"`` files' first Flow submissions (``on_chain``): recorded by the data root's first
    submitter, ``k+m`` and groups forming a layout, the parity file on chain with the layout's
    size. Raises ``InvalidRecord`` otherwise."""
    owner, parity = on_chain["data"], on_chain["parity"]
    if owner is None or owner.submitter.lower() != record.uploader.lower():
        raise InvalidRecord(f"the erasure record of 0x{record.data_root.hex()} is by {record.uploader}, "
                            f"not by the file's uploader {owner.submitter if owner else '(none)'}")
    try:
        layout = compute_stripe_layout(record.params, data.first_segment, compute_segment_count(data.size),
                                       record.groups)
    except InvalidLayout as exc:
        raise InvalidRecord(f"the erasure record of 0x{record.data_root.hex()} gives no layout: {exc.message}") from None
    wanted = layout.parity_segments * PIECE_BYTES
    if parity is None or parity.size != wanted:
        raise InvalidRecord(f"the parity file 0x{record.parity_root.hex()} of 0x{record.data_root.hex()} has "
                            f"{parity.size if parity else 'no'} bytes on chain; the recorded layout needs {wanted}")
    return layout


def files_on_chain(flow: FlowContract | None, record: ErasureRecord) -> dict[str, FileRecord | None]:
    """The first Flow submissions of the ``"data"`` and ``"parity"`` files of ``record``."""
    if flow is None:
        raise StorageError("erasure coding needs the chain (Flow)", "run against a deployment")
    return {"data": flow.file_of(record.data_root), "parity": flow.file_of(record.parity_root)}


def write_parity_file(data_path: Path, layout: StripeLayout, out: Path) -> None:
    """Write the parity file of ``layout`` for the file at ``data_path`` (filler = zeros)."""
    k, total = layout.params.k, layout.params.pieces
    encoder = zfec.Encoder(k, total)
    parity_rows = list(range(k, total))
    data_fd = os.open(data_path, os.O_RDONLY)
    out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(out_fd, layout.parity_segments * PIECE_BYTES)
        for stripe in layout.stripes:
            blocks = [bytes(PIECE_BYTES) if i is None else pad_piece(os.pread(data_fd, BYTES_PER_SEGMENT, i * BYTES_PER_SEGMENT))
                      for i in stripe.data]
            for j, block in zip(stripe.parity, encoder.encode(blocks, parity_rows), strict=True):
                os.pwrite(out_fd, block, j * PIECE_BYTES)
        os.fsync(out_fd)
    finally:
        os.close(data_fd)
        os.close(out_fd)


def pad_piece(data: bytes) -> bytes:
    return data + bytes(PIECE_BYTES - len(data)) if len(data) < PIECE_BYTES else data


# --- rebuild (the download stage) ----------------------------------------------------------


def fetch_proven(live: LiveNodes, file: Submitted, index: int) -> SegmentWithProof | None:
    """Segment ``index`` of ``file`` from any live node of its shard, proof-checked; None if none has it."""
    for node, shard in live:
        if not shard.holds(file.first_segment + index):
            continue
        try:
            data, proof = node.get_segment(file.seq, index)
            segment = SegmentWithProof(file.root, data, index, proof, file.size)
            validate_segment(segment, file.root, file.size, segment_root)
            return segment
        except InvalidSegment as exc:
            log.warning("%s served a corrupt segment %d of 0x%s: %s", node.url, index, file.root.hex(), exc.message)
        except StorageError:
            continue
    return None


def fetch_run(node: NodeConnection, file: Submitted, indexes: range, *,
              hash_data: bool = True) -> Iterator[tuple[int, SegmentWithProof]]:
    """Segments ``indexes`` of ``file`` streamed from ``node`` as frames, as they arrive: the
    ones it sent intact (none if it cannot stream; ``fetch_proven`` then gets them one by
    one); the run ends at a corrupt one. With ``hash_data`` False, a segment's length and proof
    are checked but not that its data hashes to the proof's leaf: only for pieces whose data is
    proven by a later check (a repair's decode inputs, ``StripeRepair``)."""
    try:
        for frame in node.get_segments(file.seq, indexes):
            if frame.data is None or frame.proof is None:
                continue
            segment = SegmentWithProof(file.root, frame.data, frame.index, frame.proof, file.size)
            validate_segment(segment, file.root, file.size, segment_root if hash_data else _claimed_leaf(frame.proof))
            yield frame.index, segment
    except InvalidSegment as exc:
        log.warning("%s served a corrupt segment of 0x%s: %s", node.url, file.root.hex(), exc.message)
    except StorageError as exc:
        log.info("%s did not stream segments of 0x%s (%s)", node.url, file.root.hex(), exc.message)


def _claimed_leaf(proof: Proof) -> Callable[[bytes, int], bytes]:
    """A segment-root function that takes the proof's word for the data's root."""
    return lambda data, padded_sectors: proof.leaf


def fetch_piece(live: LiveNodes, file: Submitted, index: int) -> bytes | None:
    found = fetch_proven(live, file, index)
    return found.data if found is not None else None


class Rebuild:
    """The rebuilding download of one erasure-coded file into an open ``handle``."""

    def __init__(self, handle: int, live: LiveNodes, layout: StripeLayout, data: Submitted, workers: int) -> None:
        self.handle = handle
        self.live = live
        self.layout = layout
        self.data = data
        self.threads = min(MAX_THREADS, workers * max(1, len(live)))  # `workers` per node, as StorageClient
        self.roots: list[bytes | None] = [None] * compute_segment_count(data.size)
        self._lock = threading.Lock()

    def run(self, parity_of: Callable[[], Submitted]) -> None:
        """Fetch every data segment, rebuild the missing ones from the parity file
        ``parity_of()`` (looked up only when needed), check the whole file against its root."""
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(self._fetch, range(len(self.roots))))
        missing = [i for i, root in enumerate(self.roots) if root is None]
        if missing:
            log.info("rebuilding %d missing segment(s) of 0x%s from parity", len(missing), self.data.root.hex())
            parity = parity_of()
            check_parity_size(parity, self.layout, self.data.root)
            stripe_of = self.layout.stripe_of_data()
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(lambda t: self._rebuild(t, parity), sorted({stripe_of[i] for i in missing})))
        self._check_root()

    def _write(self, index: int, segment: bytes) -> None:
        size = self.data.size
        os.pwrite(self.handle, segment[: size - index * BYTES_PER_SEGMENT], index * BYTES_PER_SEGMENT)
        root = segment_root(segment, compute_padded_segment_sectors(size, index))
        with self._lock:
            self.roots[index] = root

    def _fetch(self, index: int) -> None:
        segment = fetch_piece(self.live, self.data, index)
        if segment is not None:
            self._write(index, segment)

    def _rebuild(self, t: int, parity: Submitted) -> None:  # stripes hold disjoint segments
        for index, segment in self._decode_stripe(t, parity).items():
            self._write(index, segment)

    def _decode_stripe(self, t: int, parity: Submitted) -> dict[int, bytes]:
        """Missing data segments of stripe ``t`` (wire length), rebuilt from any ``k`` pieces."""
        stripe = self.layout.stripes[t]
        k, total = self.layout.params.k, self.layout.params.pieces
        blocks: list[bytes] = []
        numbers: list[int] = []
        for row, index in enumerate(stripe.data):
            if index is None:
                blocks.append(bytes(PIECE_BYTES))
            elif self.roots[index] is not None:
                blocks.append(pad_piece(os.pread(self.handle, BYTES_PER_SEGMENT, index * BYTES_PER_SEGMENT)))
            else:
                continue
            numbers.append(row)
        for row, j in enumerate(stripe.parity):
            if len(blocks) >= k:
                break
            piece = fetch_piece(self.live, parity, j)
            if piece is not None:
                blocks.append(piece)
                numbers.append(k + row)
        if len(blocks) < k:
            raise too_few_pieces(t, self.data.root, len(blocks), k)
        decoded = zfec.Decoder(k, total).decode(blocks[:k], numbers[:k])
        return {index: bytes(decoded[row][: compute_segment_byte_length(self.data.size, index)])
                for row, index in enumerate(stripe.data) if index is not None and self.roots[index] is None}

    def _check_root(self) -> None:
        size = self.data.size
        full = [r for r in self.roots if r is not None]
        full += [compute_padding_segment_root(size, i) for i in range(len(self.roots), compute_proof_segment_count(size))]
        if PromoteTree(full).root != self.data.root:
            raise CorruptData(f"the rebuilt file does not match its root 0x{self.data.root.hex()}",
                              "the parity recorded for it is wrong; another record or a full copy is needed")


def check_parity_size(parity: Submitted, layout: StripeLayout, root: bytes) -> None:
    """The parity file on the chain has the size the layout needs; ``CorruptData`` otherwise."""
    if parity.size != layout.parity_segments * PIECE_BYTES:
        raise CorruptData(f"the parity file of 0x{root.hex()} has {parity.size} bytes, the layout "
                          f"needs {layout.parity_segments * PIECE_BYTES}")


def too_few_pieces(stripe: int, root: bytes, found: int, k: int) -> StorageError:
    return StorageError(f"stripe {stripe} of 0x{root.hex()} has only {found} of the {k} pieces "
                        "needed to rebuild it", "too many nodes are down; see `zg storage health ROOT`")
