"""``ErasureClient``: upload files with ``k+m`` erasure coding, download them with missing
segments rebuilt, report their health and repair lost pieces.

The layout rule is ``zgos.storage.spec.erasure`` (pure); this module does the I/O around it:
* upload: submit the file (its normal 0G root), lay out stripes from its flow position, encode
  parity with zfec (systematic Reed-Solomon) into a parity file of at least ``n`` segments,
  submit it (the Flow aligns it to ``n`` segments), record data root -> parity root -> (k, m,
  groups) in ``ErasureRegistry`` (only the data root's first Flow submitter may), then send
  every node the data and parity segments of its shard.
* reading a record: the registry holds at most the file owner's record; before using it every
  reader checks that it fits the file (its recorder is the data root's submitter, k+m and the
  groups give a layout, the parity file's on-chain size is the layout's) and otherwise treats
  the file as plain (``InvalidRecord``).
* download: fetch every data segment from a node of its shard, proof-checked against the data
  root; rebuild a missing one from any ``k`` pieces of its stripe (parity pieces proof-checked
  against the parity root); before anything is written in place, check the whole file against
  the data root (the rebuilt segments included); atomic like ``StorageClient.download``. When
  the record does not fit or the rebuild fails, fall back to the plain download.
* health: per stripe, which pieces exist on which live nodes.
* repair: rebuild only the stripes that lost pieces, prove each rebuilt piece from its partner
  segment's proof, and upload it to the live node of its shard that lacks it, so the file again
  survives ``m`` losses (whole-file rebuild when a partner is lost too).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import zfec
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain, Receipt
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.storage.client import (
    CorruptData,
    FileLocation,
    NodeConnection,
    StorageClient,
    StorageError,
    _has_finalized,
    _knows_tx,
    atomic_output,
)
from zgos.storage.fasthash import segment_root
from zgos.storage.hasher import build_file_tree
from zgos.storage.spec.erasure import (
    PIECE_BYTES,
    ErasureParams,
    InvalidErasureParams,
    InvalidLayout,
    StripeLayout,
    compute_stripe_layout,
    decode_groups,
    encode_groups,
    is_valid_parity_start,
    select_partition,
)
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import (
    compute_padded_segment_sectors,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, InvalidProof, PromoteTree
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_padding_segment_root,
    compute_segment_byte_length,
    compute_segment_proof_from,
    validate_segment,
)
from zgos.storage.spec.shard import ShardConfig, compute_first_flow_segment

log = logging.getLogger(__name__)

MAX_THREADS = 64



@dataclass(frozen=True)
class ErasureRecord:
    data_root: bytes
    parity_root: bytes
    params: ErasureParams
    groups: tuple[ShardConfig, ...]
    uploader: str


class InvalidRecord(StorageError):
    """An erasure record that does not fit its file; readers treat the file as plain."""


class ErasureRegistry:
    """Typed access to the ``ErasureRegistry`` contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract("ErasureRegistry", address)

    def flow_address(self) -> str:
        """The ``Flow`` whose first submitters own the records."""
        return str(self.chain.call(self.contract.functions.flow()))

    def record_of(self, data_root: bytes) -> ErasureRecord | None:
        """The record of ``data_root`` (written by its first Flow submitter), or None; a
        malformed one is logged and ignored."""
        parity_root, k, m, uploader, _at, groups = self.chain.call(self.contract.functions.recordOf(data_root))
        if int(str(uploader), 16) == 0:
            return None
        try:
            return ErasureRecord(data_root, bytes(parity_root), ErasureParams(int(k), int(m)),
                                 decode_groups(bytes(groups)), str(uploader))
        except (InvalidLayout, InvalidErasureParams) as exc:
            log.warning("ignoring the malformed erasure record of 0x%s by %s: %s", data_root.hex(), uploader, exc.message)
            return None

    def record(self, account: LocalAccount, record: ErasureRecord) -> Receipt:
        fn = self.contract.functions.record(record.data_root, record.parity_root, record.params.k,
                                            record.params.m, encode_groups(record.groups))
        return self.chain.transact(account, fn)


@dataclass(frozen=True)
class EcUploadResult:
    root: bytes
    parity_root: bytes
    tx_seq: int
    parity_seq: int
    params: ErasureParams
    stripes: int
    data_segments: int
    parity_segments: int
    segments_sent: int


@dataclass(frozen=True)
class Piece:
    """One piece of a stripe: a data segment, a parity file segment, or a virtual zero."""

    kind: str  # "data" | "parity" | "zero"
    index: int | None
    flow_segment: int | None
    nodes: tuple[str, ...]  # live nodes holding it


@dataclass(frozen=True)
class StripeHealth:
    stripe: int
    pieces: tuple[Piece, ...]

    @property
    def present(self) -> int:
        return sum(1 for p in self.pieces if p.kind == "zero" or p.nodes)


@dataclass
class HealthReport:
    root: bytes
    record: ErasureRecord
    stripes: list[StripeHealth]
    dead_nodes: list[str]
    missing: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # node -> [(kind, index)] to restore
    orphaned: list[tuple[str, int, ShardConfig]] = field(default_factory=list)  # pieces no live node's shard holds

    @property
    def survives(self) -> int:
        """How many more group losses every stripe survives (negative: unreadable)."""
        k, total = self.record.params.k, self.record.params.pieces
        return min((s.present for s in self.stripes), default=total) - k


@dataclass(frozen=True)
class _File:
    root: bytes
    seq: int
    size: int
    start_entry: int

    @property
    def first_segment(self) -> int:
        return compute_first_flow_segment(self.start_entry)

    @classmethod
    def of(cls, location: FileLocation) -> _File:
        return cls(location.root, location.seq, location.size, location.start_entry)


class ErasureClient:
    """Erasure-coded upload, rebuilding download, health and repair; a context manager."""

    def __init__(self, nodes: Sequence[str], chain: Chain | None, flow_address: str | None,
                 registry_address: str | None, account: LocalAccount | None = None, workers: int = 4,
                 timeout_s: float = 60.0, policy: AddressPolicy = OPEN_POLICY) -> None:
        self.registry = ErasureRegistry(chain, registry_address) if chain is not None and registry_address else None
        if flow_address is None and self.registry is not None:  # sizes and owners come from its Flow
            flow_address = self.registry.flow_address()
        self.storage = StorageClient(nodes, chain, flow_address, account, workers=workers, timeout_s=timeout_s,
                                     policy=policy)
        self.account = account
        self.workers = workers

    def __enter__(self) -> ErasureClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.storage.close()

    # --- nodes ---------------------------------------------------------------------------

    def live_shards(self) -> tuple[list[tuple[NodeConnection, ShardConfig]], list[str]]:
        """(node, shard) of every node that answers ``zgs_getShardConfig``; URLs of the others."""
        def probe(node: NodeConnection) -> ShardConfig | None:
            try:
                return node.shard()
            except StorageError as exc:
                log.warning("storage node %s is not usable: %s", node.url, exc)
                return None

        with ThreadPoolExecutor(max(1, min(16, len(self.storage.nodes)))) as pool:
            shards = list(pool.map(probe, self.storage.nodes))
        live = [(n, s) for n, s in zip(self.storage.nodes, shards, strict=True) if s is not None]
        dead = [n.url for n, s in zip(self.storage.nodes, shards, strict=True) if s is None]
        return live, dead

    def _record(self, root: bytes) -> ErasureRecord | None:
        if self.registry is None:
            raise StorageError("erasure coding needs the chain (ErasureRegistry)", "run against a deployment")
        return self.registry.record_of(root)

    def _locate(self, root: bytes, what: str) -> _File:
        """The file ``root`` with its size from the chain, at a node that describes it so."""
        file, found = self.storage.verified_locations(root, finalized=False)
        if not found:
            raise StorageError(f"no live node knows the {what} 0x{root.hex()}", "check the root, or wait for log sync")
        return _File(root, found[0].seq, file.size, found[0].start_entry)

    def _layout(self, record: ErasureRecord, data: _File) -> StripeLayout:
        """The stripe layout ``record`` gives ``data``, checked to fit it: recorded by the data
        root's first Flow submitter, ``k+m`` and groups forming a layout, the parity file on
        chain with the layout's size. Raises ``InvalidRecord`` otherwise."""
        flow = self.storage.flow
        if flow is None:
            raise StorageError("erasure coding needs the chain (Flow)", "run against a deployment")
        owner = flow.file_of(record.data_root)
        if owner is None or owner.submitter.lower() != record.uploader.lower():
            raise InvalidRecord(f"the erasure record of 0x{record.data_root.hex()} is by {record.uploader}, "
                                f"not by the file's uploader {owner.submitter if owner else '(none)'}")
        try:
            layout = compute_stripe_layout(record.params, data.first_segment, compute_segment_count(data.size),
                                           record.groups)
        except InvalidLayout as exc:
            raise InvalidRecord(f"the erasure record of 0x{record.data_root.hex()} gives no layout: {exc.message}") from None
        parity = flow.file_of(record.parity_root)
        wanted = layout.parity_segments * PIECE_BYTES
        if parity is None or parity.size != wanted:
            raise InvalidRecord(f"the parity file 0x{record.parity_root.hex()} of 0x{record.data_root.hex()} has "
                                f"{parity.size if parity else 'no'} bytes on chain; the recorded layout needs {wanted}")
        return layout

    # --- upload --------------------------------------------------------------------------

    def upload(self, path: Path, params: ErasureParams, *, fee: int | None = None,
               tree: FileTree | None = None) -> EcUploadResult:
        """Upload ``path`` with ``params`` erasure coding; resumable (call again after a failure)."""
        flow = self.storage.flow
        if flow is None or self.account is None or self.registry is None:
            raise StorageError("an erasure-coded upload needs a chain account")
        if not path.is_file() or path.stat().st_size == 0:
            raise StorageError(f"{path} is not a non-empty file")
        live, _ = self.live_shards()
        configs = [s for _, s in live]
        chosen = select_partition(configs)
        if chosen is None:
            raise InvalidLayout(f"the {len(live)} live nodes' shards {sorted({str(c) for c in configs})} do not "
                                "cover every flow segment exactly", "run nodes whose shards cover 0..n-1 (e.g. --shard i/8)")
        groups = tuple(configs[i] for i in chosen)
        if len(groups) < params.pieces:  # check before paying for anything
            compute_stripe_layout(params, 0, 1, groups)
        tree = tree or build_file_tree(path)
        first = flow.file_of(tree.root)
        if first is not None and first.submitter.lower() != self.account.address.lower():
            raise StorageError(f"0x{tree.root.hex()} was first uploaded by {first.submitter}: only its uploader can "
                               "record its erasure coding", "upload it without --ec, or ask its uploader")
        data = self._submitted(tree, fee)
        layout = compute_stripe_layout(params, data.first_segment, tree.num_segments, groups)
        with tempfile.TemporaryDirectory(prefix="zgos-parity-") as scratch:
            parity_path = Path(scratch) / "parity"
            write_parity_file(path, layout, parity_path)
            parity_tree = build_file_tree(parity_path)
            parity = self._submitted(parity_tree, fee)
            if not is_valid_parity_start(parity.first_segment, groups):
                raise StorageError(f"the parity file landed at flow segment {parity.first_segment}, not a multiple "
                                   f"of {layout.modulus}; its pieces would share nodes", "upload again")
            record = ErasureRecord(tree.root, parity_tree.root, params, groups, self.account.address)
            if self.registry.record_of(tree.root) != record:
                self.registry.record(self.account, record)
            sent = self._send(live, data, path, tree) + self._send(live, parity, parity_path, parity_tree)
        for node, _ in live:
            for file in (data, parity):
                self.storage._wait(partial(_has_finalized, node, file.seq), f"{node.url} to finalize tx {file.seq}")
        return EcUploadResult(tree.root, parity_tree.root, data.seq, parity.seq, params, len(layout.stripes),
                              tree.num_segments, layout.parity_segments, sent)

    def _submitted(self, tree: FileTree, fee: int | None) -> _File:
        """The file on chain (submitted now unless a node already knows it), once a node has synced it."""
        known = self.storage.known_submission(tree)
        if known:
            return _File.of(known[0])
        assert self.storage.flow is not None and self.account is not None
        entry = self.storage.flow.submit(self.account, [tree.submission()], fee).entries[0]
        return _File(tree.root, entry.seq, tree.size, entry.start_entry)

    def _send(self, live: list[tuple[NodeConnection, ShardConfig]], file: _File, path: Path, tree: FileTree) -> int:
        """Send each live node the segments of ``file`` in its shard that it lacks."""
        sent = 0
        for node, _ in live:
            self.storage._wait(partial(_knows_tx, node, file.seq), f"{node.url} to sync tx {file.seq}")
            sent += self.storage._upload_to(node, path, tree, file.seq, file.start_entry, None)
        return sent

    # --- download ------------------------------------------------------------------------

    def download(self, root: bytes, out: Path) -> int:
        """Download ``root`` to ``out``, rebuilding missing segments; return the bytes written.
        A file without an erasure record, or whose record does not fit it or does not rebuild
        it, is downloaded as a plain file."""
        record = self._record(root)
        if record is None:
            return self.storage.download(root, out).size
        try:
            live, _ = self.live_shards()
            data = self._locate(root, "file")
            layout = self._layout(record, data)
            with atomic_output(out, data.size) as handle:
                self._rebuild_into(handle, live, record, layout, data)
            return data.size
        except StorageError as exc:
            log.warning("erasure-coded download of 0x%s failed (%s); trying the plain download", root.hex(), exc.message)
        return self.storage.download(root, out).size

    def _fetch(self, live: list[tuple[NodeConnection, ShardConfig]], file: _File, index: int) -> bytes | None:
        """Segment ``index`` of ``file`` from any live node of its shard, proof-checked; None if none has it."""
        found = self._fetch_proven(live, file, index)
        return found.data if found is not None else None

    def _fetch_proven(self, live: list[tuple[NodeConnection, ShardConfig]], file: _File,
                      index: int) -> SegmentWithProof | None:
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

    def _rebuild_into(self, handle: int, live: list[tuple[NodeConnection, ShardConfig]], record: ErasureRecord,
                      layout: StripeLayout, data: _File) -> None:
        size = data.size
        count = compute_segment_count(size)
        roots: list[bytes | None] = [None] * count
        lock = threading.Lock()

        def fetch(index: int) -> None:
            segment = self._fetch(live, data, index)
            if segment is not None:
                os.pwrite(handle, segment[: size - index * BYTES_PER_SEGMENT], index * BYTES_PER_SEGMENT)
                with lock:
                    roots[index] = segment_root(segment, compute_padded_segment_sectors(size, index))

        threads = min(MAX_THREADS, self.workers * max(1, len(live)))  # `workers` per node, as StorageClient
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fetch, range(count)))
        missing = [i for i in range(count) if roots[i] is None]
        if missing:
            log.info("rebuilding %d missing segment(s) of 0x%s from parity", len(missing), data.root.hex())
            parity = self._locate(record.parity_root, "parity file")
            if parity.size != layout.parity_segments * PIECE_BYTES:
                raise CorruptData(f"the parity file of 0x{data.root.hex()} has {parity.size} bytes, the layout needs "
                                  f"{layout.parity_segments * PIECE_BYTES}")
            stripe_of = layout.stripe_of_data()

            def rebuild(t: int) -> None:  # stripes hold disjoint segments: no two threads share an index
                for index, segment in self._decode_stripe(handle, live, layout, t, roots, parity, data).items():
                    os.pwrite(handle, segment[: size - index * BYTES_PER_SEGMENT], index * BYTES_PER_SEGMENT)
                    roots[index] = segment_root(segment, compute_padded_segment_sectors(size, index))

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(rebuild, sorted({stripe_of[i] for i in missing})))
        full = [r for r in roots if r is not None]
        full += [compute_padding_segment_root(size, i) for i in range(count, compute_proof_segment_count(size))]
        if PromoteTree(full).root != data.root:
            raise CorruptData(f"the rebuilt file does not match its root 0x{data.root.hex()}",
                              "the parity recorded for it is wrong; another record or a full copy is needed")

    def _decode_stripe(self, handle: int, live: list[tuple[NodeConnection, ShardConfig]], layout: StripeLayout,
                       t: int, roots: list[bytes | None], parity: _File, data: _File) -> dict[int, bytes]:
        """Missing data segments of stripe ``t`` (wire length), rebuilt from any ``k`` pieces."""
        stripe = layout.stripes[t]
        k, total = layout.params.k, layout.params.pieces
        blocks: list[bytes] = []
        numbers: list[int] = []
        for row, index in enumerate(stripe.data):
            if index is None:
                blocks.append(bytes(PIECE_BYTES))
            elif roots[index] is not None:
                blocks.append(_pad_piece(os.pread(handle, BYTES_PER_SEGMENT, index * BYTES_PER_SEGMENT)))
            else:
                continue
            numbers.append(row)
        for row, j in enumerate(stripe.parity):
            if len(blocks) >= k:
                break
            piece = self._fetch(live, parity, j)
            if piece is not None:
                blocks.append(piece)
                numbers.append(k + row)
        if len(blocks) < k:
            raise StorageError(f"stripe {t} of 0x{data.root.hex()} has only {len(blocks)} of the {k} pieces "
                               "needed to rebuild it", "too many nodes are down; see `zg storage health ROOT`")
        decoded = zfec.Decoder(k, total).decode(blocks[:k], numbers[:k])
        return {index: bytes(decoded[row][: compute_segment_byte_length(data.size, index)])
                for row, index in enumerate(stripe.data) if index is not None and roots[index] is None}

    # --- health and repair ---------------------------------------------------------------

    def health(self, root: bytes) -> HealthReport:
        record = self._record(root)
        if record is None:
            raise StorageError(f"0x{root.hex()} was not uploaded with erasure coding (no ErasureRegistry record)")
        live, dead = self.live_shards()
        data = self._locate(root, "file")
        layout = self._layout(record, data)  # InvalidRecord: nothing to check or repair against
        parity = self._locate(record.parity_root, "parity file")
        held: dict[tuple[str, str], set[int]] = {}
        for node, _ in live:
            for kind, file in (("data", data), ("parity", parity)):
                try:
                    held[(node.url, kind)], _final = node.held_segments(file.seq)
                except StorageError:
                    held[(node.url, kind)] = set()
        report = HealthReport(root, record, [], dead)
        files = {"data": data, "parity": parity}

        def piece(kind: str, index: int | None) -> Piece:
            if index is None:
                return Piece("zero", None, None, ())
            flow_segment = files[kind].first_segment + index
            holders = tuple(n.url for n, s in live if s.holds(flow_segment) and index in held[(n.url, kind)])
            shard_nodes = [n.url for n, s in live if s.holds(flow_segment)]
            for url in shard_nodes:
                if index not in held[(url, kind)]:
                    report.missing.setdefault(url, []).append((kind, index))
            if not shard_nodes:
                owner = next(g for g in record.groups if g.holds(flow_segment % layout.modulus))
                report.orphaned.append((kind, index, owner))
            return Piece(kind, index, flow_segment, holders)

        for t, stripe in enumerate(layout.stripes):
            pieces = [piece("data", i) for i in stripe.data] + [piece("parity", j) for j in stripe.parity]
            report.stripes.append(StripeHealth(t, tuple(pieces)))
        return report

    def repair(self, root: bytes) -> tuple[HealthReport, int]:
        """Restore every piece a live node of its shard lacks; return the health before and the
        number of segments restored. Pieces whose shard has no live node stay missing.

        Stripe by stripe: fetch any ``k`` pieces of a stripe, decode and re-encode it, and prove
        each rebuilt piece with a proof assembled from its partner segment's proof
        (``compute_segment_proof_from``), so only the affected stripes are read. If a piece
        cannot be proven that way (its partner is lost too), fall back to rebuilding the whole
        file and recomputing its parity."""
        report = self.health(root)
        if not report.missing:
            return report, 0
        live, _ = self.live_shards()
        data = self._locate(root, "file")
        parity = self._locate(report.record.parity_root, "parity file")
        for url in report.missing:
            node = next(n for n, _ in live if n.url == url)
            for file in (data, parity):
                self.storage._wait(partial(_knows_tx, node, file.seq), f"{url} to sync tx {file.seq}")
        try:
            return report, self._repair_stripes(report, live, data, parity)
        except _Unprovable as exc:
            log.warning("repairing 0x%s from the whole file (slower): %s", root.hex(), exc)
            return report, self._repair_whole_file(report, live, data, parity)

    def _repair_stripes(self, report: HealthReport, live: list[tuple[NodeConnection, ShardConfig]],
                        data: _File, parity: _File) -> int:
        layout = compute_stripe_layout(report.record.params, data.first_segment, compute_segment_count(data.size),
                                       report.record.groups)
        stripe_of_data, stripe_of_parity = layout.stripe_of_data(), layout.stripe_of_parity()
        wanted: dict[int, list[tuple[str, int, str]]] = {}  # stripe -> [(kind, index, node url)]
        for url, pieces in report.missing.items():
            for kind, index in pieces:
                t = stripe_of_data[index] if kind == "data" else stripe_of_parity[index][0]
                wanted.setdefault(t, []).append((kind, index, url))
        nodes = {n.url: n for n, _ in live}
        files = {"data": data, "parity": parity}

        def repair_stripe(t: int) -> int:
            fetched: dict[tuple[str, int], SegmentWithProof] = {}
            pieces = self._stripe_pieces(live, layout, t, data, parity, fetched)
            stripe = layout.stripes[t]
            for kind, index, url in wanted[t]:
                file = files[kind]
                row = stripe.data.index(index) if kind == "data" else layout.params.k + stripe.parity.index(index)
                segment = self._prove(live, file, kind, index, pieces[row], fetched)
                nodes[url].put_segment(file.seq, segment)
            return len(wanted[t])

        threads = min(MAX_THREADS, self.workers * max(1, len(live)))
        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(repair_stripe, sorted(wanted)))

    def _stripe_pieces(self, live: list[tuple[NodeConnection, ShardConfig]], layout: StripeLayout, t: int,
                       data: _File, parity: _File, fetched: dict[tuple[str, int], SegmentWithProof]) -> list[bytes]:
        """All ``k + m`` pieces of stripe ``t`` (padded to a whole segment), from any ``k``
        proof-checked pieces; the segments fetched are kept in ``fetched``."""
        stripe = layout.stripes[t]
        k, total = layout.params.k, layout.params.pieces
        blocks: list[bytes] = []
        numbers: list[int] = []
        candidates = [("data", row, index) for row, index in enumerate(stripe.data)]
        candidates += [("parity", k + row, j) for row, j in enumerate(stripe.parity)]
        for kind, number, index in candidates:
            if len(blocks) == k:
                break
            if index is None:
                blocks.append(bytes(PIECE_BYTES))
            else:
                segment = self._fetch_proven(live, data if kind == "data" else parity, index)
                if segment is None:
                    continue
                fetched[(kind, index)] = segment
                blocks.append(_pad_piece(segment.data))
            numbers.append(number)
        if len(blocks) < k:
            raise StorageError(f"stripe {t} of 0x{data.root.hex()} has only {len(blocks)} of the {k} pieces "
                               "needed to rebuild it", "too many nodes are down; see `zg storage health ROOT`")
        primary = zfec.Decoder(k, total).decode(blocks, numbers)
        return [bytes(b) for b in primary] + [bytes(b) for b in zfec.Encoder(k, total).encode(primary, list(range(k, total)))]

    def _prove(self, live: list[tuple[NodeConnection, ShardConfig]], file: _File, kind: str, index: int,
               piece: bytes, fetched: dict[tuple[str, int], SegmentWithProof]) -> SegmentWithProof:
        """The rebuilt segment ``index`` of ``file`` with a proof from its partner's proof,
        validated against the file's root (which also proves the rebuilt bytes)."""
        wire = piece[: compute_segment_byte_length(file.size, index)]
        leaf = segment_root(wire, compute_padded_segment_sectors(file.size, index))
        count = compute_segment_count(file.size)
        partner = index ^ 1 if index ^ 1 < count else index - 1
        neighbour = None
        if partner >= 0:
            known = fetched.get((kind, partner)) or self._fetch_proven(live, file, partner)
            if known is None:
                raise _Unprovable(f"{kind} segment {partner}, the partner of {index}, is lost too")
            neighbour = known.proof
        try:
            proof = compute_segment_proof_from(file.size, file.root, index, leaf, neighbour)
            segment = SegmentWithProof(file.root, wire, index, proof, file.size)
            validate_segment(segment, file.root, file.size, segment_root)
        except (InvalidProof, InvalidSegment) as exc:
            raise CorruptData(f"rebuilt {kind} segment {index} of 0x{file.root.hex()} does not match its root: "
                              f"{exc.message}", "the recorded parity is wrong; another record or a full copy is needed") from None
        return segment

    def _repair_whole_file(self, report: HealthReport, live: list[tuple[NodeConnection, ShardConfig]],
                           data: _File, parity: _File) -> int:
        by_url = {n.url: (n, s) for n, s in live}
        restored = 0
        with tempfile.TemporaryDirectory(prefix="zgos-repair-") as scratch:
            data_path, parity_path = Path(scratch) / "data", Path(scratch) / "parity"
            self.download(report.root, data_path)
            layout = compute_stripe_layout(report.record.params, data.first_segment,
                                           compute_segment_count(data.size), report.record.groups)
            write_parity_file(data_path, layout, parity_path)
            trees = {"data": build_file_tree(data_path), "parity": build_file_tree(parity_path)}
            if trees["parity"].root != report.record.parity_root:
                raise CorruptData("the recomputed parity does not match the recorded parity root",
                                  "the uploader recorded a wrong parity file; re-upload with --ec")
            paths = {"data": data_path, "parity": parity_path}
            files = {"data": data, "parity": parity}
            for url, pieces in report.missing.items():
                node, _ = by_url[url]
                for kind in sorted({kind for kind, _ in pieces}):
                    restored += self.storage._upload_to(node, paths[kind], trees[kind], files[kind].seq,
                                                        files[kind].start_entry, None)
        return restored


class _Unprovable(Exception):
    """A rebuilt piece cannot be proven from its partner alone (the partner is lost too)."""


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
            blocks = [bytes(PIECE_BYTES) if i is None else _pad_piece(os.pread(data_fd, BYTES_PER_SEGMENT, i * BYTES_PER_SEGMENT))
                      for i in stripe.data]
            for j, block in zip(stripe.parity, encoder.encode(blocks, parity_rows), strict=True):
                os.pwrite(out_fd, block, j * PIECE_BYTES)
        os.fsync(out_fd)
    finally:
        os.close(data_fd)
        os.close(out_fd)


def _pad_piece(data: bytes) -> bytes:
    return data + bytes(PIECE_BYTES - len(data)) if len(data) < PIECE_BYTES else data


def describe(report: HealthReport) -> dict[str, Any]:
    """The health report as JSON-friendly data (for the CLI and the gateway)."""
    k, total = report.record.params.k, report.record.params.pieces
    return {
        "root": "0x" + report.root.hex(),
        "parityRoot": "0x" + report.record.parity_root.hex(),
        "ec": str(report.record.params),
        "groups": [str(g) for g in report.record.groups],
        "survivesMoreLosses": report.survives,
        "deadNodes": report.dead_nodes,
        "stripes": [
            {"stripe": s.stripe, "present": s.present, "of": total, "readable": s.present >= k,
             "pieces": [{"kind": p.kind, "index": p.index, "flowSegment": p.flow_segment, "nodes": list(p.nodes)}
                        for p in s.pieces]}
            for s in report.stripes
        ],
        "toRestore": {url: len(pieces) for url, pieces in report.missing.items()},
        "noLiveNode": [f"{kind} {index} (shard {shard})" for kind, index, shard in report.orphaned],
    }
