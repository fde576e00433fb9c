"""Health and repair of an erasure-coded file (``zgos.storage.erasurecode`` lays it out).

* health (``check_health``): per stripe, which pieces exist on which live nodes; which live
  node of a piece's shard lacks it; which pieces no live node's shard holds.
* repair (``StripeRepair``): rebuild only the stripes that lost pieces, prove each rebuilt
  piece from its partner segment's proof, and upload it to the live node of its shard that
  lacks it, so the file again survives ``m`` losses. When a partner is lost too, it is rebuilt
  first (from its own stripe) for its root, and the siblings above it come from the proof of a
  surviving segment next to the pair. Only when a whole run of neighbours above a pair is lost
  is the piece ``Unprovable``; the caller then rebuilds the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zfec

from zgos.storage.contracts import ErasureRecord
from zgos.storage.erasurecode import (
    MAX_THREADS,
    LiveNodes,
    fetch_proven,
    fetch_proven_run,
    pad_piece,
    too_few_pieces,
)
from zgos.storage.fasthash import segment_root
from zgos.storage.nodeclient import CorruptData, NodeConnection, StorageError
from zgos.storage.spec.erasure import PIECE_BYTES, StripeLayout
from zgos.storage.spec.flow import (
    compute_padded_segment_sectors,
    compute_proof_segment_count,
    compute_segment_count,
)
from zgos.storage.spec.frames import MAX_FRAMES_PER_REQUEST
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, InvalidProof, compute_proof_path
from zgos.storage.spec.segment import (
    InvalidSegment,
    SegmentWithProof,
    compute_revealed_roots,
    compute_segment_byte_length,
    compute_segment_proof_from,
    compute_sibling_ranges,
    validate_segment,
)
from zgos.storage.spec.shard import ShardConfig
from zgos.storage.upload import BATCH_SEGMENTS, Submitted

STREAM_WINDOW = 64  # segments (16 MiB) a degraded stream fetches and proves at a time


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


class Unprovable(Exception):
    """A rebuilt piece cannot be proven from its partner alone (the partner is lost too)."""


def check_health(report: HealthReport, live: LiveNodes, layout: StripeLayout, files: dict[str, Submitted]) -> None:
    """Fill ``report`` with the stripes of ``layout``: where each piece of the ``"data"`` and
    ``"parity"`` files is, which live node of its shard lacks it, which have no live node."""
    def held_by(node: NodeConnection, file: Submitted) -> set[int]:
        try:
            return node.held_segments(file.seq)[0]
        except StorageError:
            return set()

    asked = [(node, kind, file) for node, _ in live for kind, file in files.items()]
    with ThreadPoolExecutor(min(MAX_THREADS, len(asked) or 1)) as pool:
        answers = pool.map(lambda a: held_by(a[0], a[2]), asked)
        held = {(node.url, kind): segments for (node, kind, _), segments in zip(asked, answers, strict=True)}

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
            owner = next(g for g in report.record.groups if g.holds(flow_segment % layout.modulus))
            report.orphaned.append((kind, index, owner))
        return Piece(kind, index, flow_segment, holders)

    for t, stripe in enumerate(layout.stripes):
        pieces = [piece("data", i) for i in stripe.data] + [piece("parity", j) for j in stripe.parity]
        report.stripes.append(StripeHealth(t, tuple(pieces)))


class StripeDecoder:
    """Decodes the stripes of an erasure-coded file and proves each rebuilt piece with a proof
    assembled from its neighbours' proofs (``compute_segment_proof_from``)."""

    def __init__(self, live: LiveNodes, layout: StripeLayout, files: dict[str, Submitted], workers: int) -> None:
        self.live = live
        self.layout = layout
        self.files = files
        self.threads = min(MAX_THREADS, workers * max(1, len(live)))

    def _fetch_runs(self, needed: dict[tuple[str, str], set[int]]) -> dict[tuple[str, int], SegmentWithProof]:
        """The segments ``needed`` names per (node url, kind), fetched as runs of frames per
        node and proof-checked: a node holds one residue of the flow, so the pieces it holds are
        every ``num_shard``-th segment of a file. Those a node did not send are left out."""
        shards = {node.url: (node, shard) for node, shard in self.live}

        def fetch(key: tuple[str, str]) -> dict[tuple[str, int], SegmentWithProof]:
            (node, shard), kind, indexes = shards[key[0]], key[1], needed[key]
            step, first, last = shard.num_shard, min(indexes), max(indexes)
            found = {}
            for start in range(first, last + 1, step * MAX_FRAMES_PER_REQUEST):
                window = range(start, min(last + 1, start + step * MAX_FRAMES_PER_REQUEST), step)
                if not indexes.isdisjoint(window):
                    found.update({(kind, i): s for i, s in fetch_proven_run(node, self.files[kind], window).items()
                                  if i in indexes})
            return found

        fetched: dict[tuple[str, int], SegmentWithProof] = {}
        with ThreadPoolExecutor(self.threads) as pool:
            for found in pool.map(fetch, needed):
                fetched.update(found)
        return fetched

    def _stripe_pieces(self, t: int, fetched: dict[tuple[str, int], SegmentWithProof]) -> list[bytes]:
        """All ``k + m`` pieces of stripe ``t`` (padded to a whole segment), from any ``k``
        proof-checked pieces; the segments fetched are kept in ``fetched``."""
        stripe = self.layout.stripes[t]
        k, total = self.layout.params.k, self.layout.params.pieces
        blocks: list[bytes] = []
        numbers: list[int] = []
        candidates = [("data", row, index) for row, index in enumerate(stripe.data)]
        candidates += [("parity", k + row, j) for row, j in enumerate(stripe.parity)]
        # any k pieces decode: those at hand first (a lost one would cost a request to find out)
        candidates.sort(key=lambda c: c[2] is not None and (c[0], c[2]) not in fetched)
        for kind, number, index in candidates:
            if len(blocks) == k:
                break
            if index is None:
                blocks.append(bytes(PIECE_BYTES))
            else:
                segment = fetched.get((kind, index)) or fetch_proven(self.live, self.files[kind], index)
                if segment is None:
                    continue
                fetched[(kind, index)] = segment
                blocks.append(pad_piece(segment.data))
            numbers.append(number)
        if len(blocks) < k:
            raise too_few_pieces(t, self.files["data"].root, len(blocks), k)
        primary = zfec.Decoder(k, total).decode(blocks, numbers)
        return [bytes(b) for b in primary] + [bytes(b) for b in zfec.Encoder(k, total).encode(primary, list(range(k, total)))]

    def _prove(self, file: Submitted, kind: str, index: int, piece: bytes,
               fetched: dict[tuple[str, int], SegmentWithProof]) -> SegmentWithProof:
        """The rebuilt segment ``index`` of ``file`` with a proof assembled from its siblings'
        roots (``_sibling_roots``), validated against the file's root (which also proves the
        rebuilt bytes)."""
        wire = piece[: compute_segment_byte_length(file.size, index)]
        leaf = segment_root(wire, compute_padded_segment_sectors(file.size, index))
        try:
            proof = compute_segment_proof_from(file.size, file.root, index, leaf, None,
                                               self._sibling_roots(file, kind, index, fetched))
            segment = SegmentWithProof(file.root, wire, index, proof, file.size)
            validate_segment(segment, file.root, file.size, segment_root)
        except (InvalidProof, InvalidSegment) as exc:
            raise CorruptData(f"rebuilt {kind} segment {index} of 0x{file.root.hex()} does not match its root: "
                              f"{exc.message}", "the recorded parity is wrong; another record or a full copy is needed") from None
        return segment

    def _sibling_roots(self, file: Submitted, kind: str, index: int,
                       fetched: dict[tuple[str, int], SegmentWithProof]) -> dict[tuple[int, int], bytes]:
        """The roots of segment ``index``'s siblings, lowest first: each from the proof of any
        surviving segment under it (which reveals the siblings above it too), else, for a lost
        single segment, from rebuilding it from its own stripe."""
        n_proof, count = compute_proof_segment_count(file.size), compute_segment_count(file.size)
        known: dict[tuple[int, int], bytes] = {}
        for lo, hi in compute_sibling_ranges(compute_proof_path(index, n_proof), n_proof):
            if (lo, hi) in known or lo >= count:  # rear padding: the spec computes it
                continue
            under = range(lo, min(hi, count))
            found = next((s for j in under if (s := fetched.get((kind, j))) is not None), None)
            found = found or next((s for j in under if (s := fetch_proven(self.live, file, j)) is not None), None)
            if found is not None:
                known.update(compute_revealed_roots(found.proof, n_proof))
            elif hi - lo == 1:
                wire = self._rebuilt(kind, lo, fetched)[: compute_segment_byte_length(file.size, lo)]
                known[(lo, hi)] = segment_root(wire, compute_padded_segment_sectors(file.size, lo))
            else:
                raise Unprovable(f"{kind} segments {lo}..{hi - 1} around segment {index} are all lost")
        return known

    def _rebuilt(self, kind: str, index: int, fetched: dict[tuple[str, int], SegmentWithProof]) -> bytes:
        """Lost segment ``index`` of the ``kind`` file (a whole piece), decoded from its stripe."""
        t = self.layout.stripe_of_data()[index] if kind == "data" else self.layout.stripe_of_parity()[index][0]
        stripe = self.layout.stripes[t]
        row = stripe.data.index(index) if kind == "data" else self.layout.params.k + stripe.parity.index(index)
        return self._stripe_pieces(t, fetched)[row]

    def _holder(self, kind: str, index: int) -> str | None:
        """The url of the first live node whose shard holds segment ``index`` of the ``kind`` file."""
        segment = self.files[kind].first_segment + index
        return next((n.url for n, shard in self.live if shard.holds(segment)), None)


class StripeStream(StripeDecoder):
    """A degraded erasure-coded file's bytes in order, each segment proven before it is given
    out: fetched ones by their own proofs, rebuilt ones (decoded from any ``k`` pieces of their
    stripe) by a proof assembled from their neighbours' (``StripeDecoder._prove``). Works through
    the file ``STREAM_WINDOW`` segments at a time, fetched as runs of frames per node, so memory
    stays bounded by a window and the stripes it touches."""

    def chunks(self) -> Iterator[bytes]:
        data = self.files["data"]
        count, stripe_of = compute_segment_count(data.size), self.layout.stripe_of_data()
        for start in range(0, count, STREAM_WINDOW):
            run = range(start, min(count, start + STREAM_WINDOW))
            fetched = self._fetch_runs(self._holders(run))
            decoded: dict[int, list[bytes]] = {}
            for index in run:
                segment = fetched.get(("data", index)) or fetch_proven(self.live, data, index)
                if segment is None:
                    t = stripe_of[index]
                    if t not in decoded:
                        decoded[t] = self._stripe_pieces(t, fetched)
                    piece = decoded[t][self.layout.stripes[t].data.index(index)]
                    segment = self._prove(data, "data", index, piece, fetched)
                yield segment.data[: data.size - index * BYTES_PER_SEGMENT]  # the last one's sector padding off

    def _holders(self, run: range) -> dict[tuple[str, str], set[int]]:
        """Each segment of ``run`` assigned to the first live node whose shard holds it."""
        needed: dict[tuple[str, str], set[int]] = {}
        for index in run:
            if (url := self._holder("data", index)) is not None:
                needed.setdefault((url, "data"), set()).add(index)
        return needed


class StripeRepair(StripeDecoder):
    """Restores the pieces ``report.missing`` lists, stripe by stripe: fetch any ``k`` pieces
    of a stripe (all stripes' pieces first, as runs of frames per node), decode and re-encode
    it, prove each rebuilt piece, send it to its node."""

    def __init__(self, report: HealthReport, live: LiveNodes, layout: StripeLayout, files: dict[str, Submitted],
                 workers: int) -> None:
        super().__init__(live, layout, files, workers)
        self.report = report

    def run(self) -> int:
        """The number of segments restored; raises ``Unprovable`` when a partner is lost too."""
        stripe_of_data, stripe_of_parity = self.layout.stripe_of_data(), self.layout.stripe_of_parity()
        wanted: dict[int, list[tuple[str, int, str]]] = {}  # stripe -> [(kind, index, node url)]
        for url, pieces in self.report.missing.items():
            for kind, index in pieces:
                t = stripe_of_data[index] if kind == "data" else stripe_of_parity[index][0]
                wanted.setdefault(t, []).append((kind, index, url))
        fetched = self._prefetch(wanted)
        with ThreadPoolExecutor(self.threads) as pool:
            rebuilt = [item for items in pool.map(lambda t: self._repair_stripe(t, wanted[t], fetched), sorted(wanted))
                       for item in items]
            by_target: dict[tuple[str, str], list[SegmentWithProof]] = {}
            for url, kind, segment in rebuilt:
                by_target.setdefault((url, kind), []).append(segment)
            batches = [(url, kind, segments[i : i + BATCH_SEGMENTS]) for (url, kind), segments in by_target.items()
                       for i in range(0, len(segments), BATCH_SEGMENTS)]
            list(pool.map(lambda batch: self._send(*batch), batches))
        return len(rebuilt)

    def _send(self, url: str, kind: str, segments: list[SegmentWithProof]) -> None:
        """Rebuilt ``segments`` of the ``kind`` file to the node at ``url``: in one request of
        frames, else one by one (with ``put_segment``'s retries and refusal rules)."""
        node = next(n for n, _ in self.live if n.url == url)
        seq = self.files[kind].seq
        try:
            node.put_segments(seq, segments)
        except StorageError:
            for segment in segments:
                node.put_segment(seq, segment)

    def _prefetch(self, wanted: dict[int, list[tuple[str, int, str]]]) -> dict[tuple[str, int], SegmentWithProof]:
        """The pieces the ``wanted`` stripes will be decoded from (the first ``k`` present in
        each), and each lost piece's partner, whose proof reveals the roots the rebuilt piece's
        own proof needs (``_sibling_roots``)."""
        k = self.layout.params.k
        needed: dict[tuple[str, str], set[int]] = {}  # (node url, kind) -> segment indexes
        for t in wanted:
            present = [p for p in self.report.stripes[t].pieces if p.kind == "zero" or p.nodes][:k]
            for piece in present:
                if piece.kind != "zero" and piece.index is not None:
                    needed.setdefault((piece.nodes[0], piece.kind), set()).add(piece.index)
        holders = {(p.kind, p.index): p.nodes for stripe in self.report.stripes for p in stripe.pieces if p.nodes}
        for kind, index, _ in (piece for pieces in wanted.values() for piece in pieces):
            if partner_holders := holders.get((kind, index ^ 1)):
                needed.setdefault((partner_holders[0], kind), set()).add(index ^ 1)
        return self._fetch_runs(needed)

    def _repair_stripe(self, t: int, wanted: list[tuple[str, int, str]],
                       fetched: dict[tuple[str, int], SegmentWithProof]) -> list[tuple[str, str, SegmentWithProof]]:
        """The ``wanted`` pieces of stripe ``t`` rebuilt and proven, with the node each goes to."""
        pieces = self._stripe_pieces(t, fetched)
        stripe = self.layout.stripes[t]
        rebuilt = []
        for kind, index, url in wanted:
            row = stripe.data.index(index) if kind == "data" else self.layout.params.k + stripe.parity.index(index)
            rebuilt.append((url, kind, self._prove(self.files[kind], kind, index, pieces[row], fetched)))
        return rebuilt


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
