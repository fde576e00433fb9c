"""Degraded reads and repair of an erasure-coded file (``zgos.storage.erasurecode`` lays it
out; ``zgos.storage.echealth`` says what is lost).

* degraded read (``StripeStream``): the file's bytes in order, lost segments rebuilt.
* repair (``StripeRepair``): rebuild only the stripes that lost pieces, prove each rebuilt
  piece from its partner segment's proof, and upload it to the live node of its shard that
  lacks it, so the file again survives ``m`` losses. When a partner is lost too, it is rebuilt
  first (from its own stripe) for its root, and the siblings above it come from the proof of a
  surviving segment next to the pair. Only when a whole run of neighbours above a pair is lost
  is the piece ``Unprovable``; the caller then rebuilds the whole file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zfec

from zgos.storage.echealth import HealthReport
from zgos.storage.erasurecode import (
    MAX_THREADS,
    LiveNodes,
    fetch_proven,
    fetch_run,
    pad_piece,
    too_few_pieces,
)
from zgos.storage.fasthash import segment_root
from zgos.storage.nodeclient import CorruptData, StorageError
from zgos.storage.scores import PeerScores
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
from zgos.storage.upload import BATCH_SEGMENTS, Submitted

log = logging.getLogger(__name__)

STREAM_WINDOW = 64  # segments (16 MiB) a degraded stream fetches and proves at a time
REPAIR_WINDOW_STRIPES = 64  # stripes a repair fetches and rebuilds at a time (k pieces and the partners of the lost)


class Unprovable(Exception):
    """A rebuilt piece cannot be proven from its partner alone (the partner is lost too)."""


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
        node (``_run_of``) and proof-checked. Those a node did not send are left out."""
        fetched: dict[tuple[str, int], SegmentWithProof] = {}
        with ThreadPoolExecutor(self.threads) as pool:
            for found in pool.map(lambda key: dict(self._run_of(*key, needed[key])), needed):
                fetched.update(found)
        return fetched

    def _run_of(self, url: str, kind: str, indexes: set[int], *,
                hash_data: bool = True) -> Iterator[tuple[tuple[str, int], SegmentWithProof]]:
        """Segments ``indexes`` of the ``kind`` file from the node at ``url``, as they arrive,
        proof-checked (the data's hash only if ``hash_data``, see ``fetch_run``): a node holds
        one residue of the flow, so the pieces it holds are every ``num_shard``-th segment of a
        file, fetched as runs of frames."""
        node, shard = next((n, s) for n, s in self.live if n.url == url)
        step, first, last = shard.num_shard, min(indexes), max(indexes)
        for start in range(first, last + 1, step * MAX_FRAMES_PER_REQUEST):
            window = range(start, min(last + 1, start + step * MAX_FRAMES_PER_REQUEST), step)
            if not indexes.isdisjoint(window):
                yield from (((kind, i), s) for i, s in fetch_run(node, self.files[kind], window, hash_data=hash_data)
                            if i in indexes)

    def _stripe_rows(self, t: int, rows: Sequence[int], fetched: dict[tuple[str, int], SegmentWithProof]) -> list[bytes]:
        """Rows ``rows`` of stripe ``t`` (``0..k-1`` data, ``k..`` parity), each a whole piece,
        from any ``k`` pieces at hand or fetched proof-checked; the segments fetched are kept in
        ``fetched``. Only the rows asked for are computed: a lost data row is decoded, a lost
        parity row re-encoded, and nothing else."""
        k, total = self.layout.params.k, self.layout.params.pieces
        blocks, numbers = self._any_k_pieces(t, fetched)
        primary = blocks if numbers == list(range(k)) else zfec.Decoder(k, total).decode(blocks, numbers)
        parity_rows = tuple(r for r in rows if r >= k)
        parity = dict(zip(parity_rows, zfec.Encoder(k, total).encode(primary, parity_rows), strict=True)) if parity_rows else {}
        return [bytes(primary[r]) if r < k else parity[r] for r in rows]

    def _any_k_pieces(self, t: int, fetched: dict[tuple[str, int], SegmentWithProof]) -> tuple[list[bytes], list[int]]:
        """``k`` pieces of stripe ``t`` (padded to a whole segment) and their row numbers: those at
        hand first (a lost one would cost a request to find out), in row order."""
        stripe = self.layout.stripes[t]
        k = self.layout.params.k
        candidates = [("data", row, index) for row, index in enumerate(stripe.data)]
        candidates += [("parity", k + row, j) for row, j in enumerate(stripe.parity)]
        candidates.sort(key=lambda c: c[2] is not None and (c[0], c[2]) not in fetched)
        found: dict[int, bytes] = {}
        for kind, number, index in candidates:
            if len(found) == k:
                break
            if index is None:
                found[number] = bytes(PIECE_BYTES)
            elif (segment := fetched.get((kind, index)) or fetch_proven(self.live, self.files[kind], index)) is not None:
                fetched[(kind, index)] = segment
                found[number] = pad_piece(segment.data)
        if len(found) < k:
            raise too_few_pieces(t, self.files["data"].root, len(found), k)
        numbers = sorted(found)
        return [found[n] for n in numbers], numbers

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
        return self._stripe_rows(t, [row], fetched)[0]

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
                        decoded[t] = self._stripe_rows(t, range(self.layout.params.k), fetched)
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


class _Arrivals:
    """The pieces a repair fetches, as they arrive, so each stripe decodes once its own have."""

    def __init__(self, fetches: int) -> None:
        self.segments: dict[tuple[str, int], SegmentWithProof] = {}
        self.unhashed: dict[tuple[str, int], str] = {}  # arrived pieces whose data is not hashed yet: their node
        self._fetches = fetches  # still running
        self._changed = threading.Condition()

    def add(self, key: tuple[str, int], segment: SegmentWithProof, url: str) -> None:
        with self._changed:
            self.segments[key] = segment
            self.unhashed[key] = url
            self._changed.notify_all()

    def fetch_ended(self) -> None:
        with self._changed:
            self._fetches -= 1
            self._changed.notify_all()

    def wait_for(self, keys: Iterable[tuple[str, int]]) -> None:
        """Until every one of ``keys`` has arrived, or every fetch has ended."""
        with self._changed:
            self._changed.wait_for(lambda: not self._fetches or all(key in self.segments for key in keys))

    def wait_all(self) -> None:
        """Until every fetch has ended: nothing arrives after."""
        with self._changed:
            self._changed.wait_for(lambda: not self._fetches)


@dataclass(frozen=True)
class _Pools:
    fetchers: ThreadPoolExecutor
    decoders: ThreadPoolExecutor
    senders: ThreadPoolExecutor


class StripeRepair(StripeDecoder):
    """Restores the pieces ``report.missing`` lists, ``REPAIR_WINDOW_STRIPES`` stripes at a
    time: fetch any ``k`` pieces of each stripe (as runs of frames per node), decode each stripe
    as soon as its pieces have arrived, prove each rebuilt piece, send it to its node while later
    stripes decode. A node that sent a rotten piece is scored down in ``scores``."""

    def __init__(self, report: HealthReport, live: LiveNodes, layout: StripeLayout, files: dict[str, Submitted],
                 workers: int, scores: PeerScores) -> None:
        super().__init__(live, layout, files, workers)
        self.report = report
        self.scores = scores
        self._hashing = threading.Lock()

    def run(self) -> int:
        """The number of segments restored; raises ``Unprovable`` when a partner is lost too.
        Memory holds one window's pieces and two windows' rebuilt pieces, whatever the file's size."""
        wanted = self._wanted()
        stripes = sorted(wanted)
        restored, sending = 0, []
        # decoding is CPU work (zfec and the hasher release the GIL): a thread per core, so
        # stripes finish in order and their pieces go out while later stripes decode
        with (ThreadPoolExecutor(self.threads) as fetchers, ThreadPoolExecutor(os.cpu_count() or 1) as decoders,
              ThreadPoolExecutor(self.threads) as senders):
            for start in range(0, len(stripes), REPAIR_WINDOW_STRIPES):
                window = {t: wanted[t] for t in stripes[start : start + REPAIR_WINDOW_STRIPES]}
                sent, sending = sending, self._repair_window(window, _Pools(fetchers, decoders, senders))
                restored += sum(len(pieces) for pieces in window.values())
                for future in sent:  # the window before this one is delivered before the next is fetched
                    future.result()
            for future in sending:
                future.result()
        return restored

    def _repair_window(self, wanted: dict[int, list[tuple[str, int, str]]], pools: _Pools) -> list[Future[None]]:
        """Fetch, rebuild and start sending the ``wanted`` pieces; the sends still running."""
        needed, inputs = self._plan(wanted)
        arrivals = _Arrivals(len(needed))
        fetches = [pools.fetchers.submit(self._fetch_into, arrivals, *key, needed[key]) for key in needed]
        sends: list[Future[None]] = []
        batches: dict[tuple[str, str], list[SegmentWithProof]] = {}
        repaired = pools.decoders.map(lambda t: self._repair_stripe(t, wanted[t], inputs[t], arrivals), sorted(wanted))
        for url, kind, segment in (item for items in repaired for item in items):
            batch = batches.setdefault((url, kind), [])
            batch.append(segment)
            if len(batch) == BATCH_SEGMENTS:
                sends.append(pools.senders.submit(self._send, url, kind, batches.pop((url, kind))))
        sends += [pools.senders.submit(self._send, url, kind, batch) for (url, kind), batch in batches.items()]
        for fetch in fetches:
            fetch.result()
        return sends

    def _wanted(self) -> dict[int, list[tuple[str, int, str]]]:
        """The lost pieces of each stripe that lost any: (kind, index, url of the node to get it)."""
        stripe_of_data, stripe_of_parity = self.layout.stripe_of_data(), self.layout.stripe_of_parity()
        wanted: dict[int, list[tuple[str, int, str]]] = {}
        for url, pieces in self.report.missing.items():
            for kind, index in pieces:
                t = stripe_of_data[index] if kind == "data" else stripe_of_parity[index][0]
                wanted.setdefault(t, []).append((kind, index, url))
        return wanted

    def _plan(self, wanted: dict[int, list[tuple[str, int, str]]]
              ) -> tuple[dict[tuple[str, str], set[int]], dict[int, list[tuple[str, int]]]]:
        """What to fetch from which node (by node url and kind), and what each stripe waits for:
        the pieces it will be decoded from (the first ``k`` present), and each lost piece's
        partner, whose proof reveals the roots the rebuilt piece's own proof needs
        (``_sibling_roots``)."""
        k = self.layout.params.k
        holders = {(p.kind, p.index): p.nodes for stripe in self.report.stripes for p in stripe.pieces if p.nodes}
        needed: dict[tuple[str, str], set[int]] = {}
        inputs: dict[int, list[tuple[str, int]]] = {}
        for t, pieces in wanted.items():
            present = [p for p in self.report.stripes[t].pieces if p.kind == "zero" or p.nodes][:k]
            keys = [(p.kind, p.index) for p in present if p.kind != "zero" and p.index is not None]
            keys += [(kind, index ^ 1) for kind, index, _ in pieces if (kind, index ^ 1) in holders]
            for kind, index in keys:
                needed.setdefault((holders[(kind, index)][0], kind), set()).add(index)
            inputs[t] = keys
        return needed, inputs

    def _fetch_into(self, arrivals: _Arrivals, url: str, kind: str, indexes: set[int]) -> None:
        try:
            for key, segment in self._run_of(url, kind, indexes, hash_data=False):
                arrivals.add(key, segment, url)
        finally:
            arrivals.fetch_ended()

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

    def _repair_stripe(self, t: int, wanted: list[tuple[str, int, str]], inputs: list[tuple[str, int]],
                       arrivals: _Arrivals) -> list[tuple[str, str, SegmentWithProof]]:
        """The ``wanted`` pieces of stripe ``t`` rebuilt and proven, with the node each goes to.

        The fetched pieces are decoded before their data is hashed (their proofs are checked):
        each rebuilt piece's own proof is checked against the file's root, and every decode
        input enters it (an MDS code's rebuilt row depends on each of its ``k`` inputs), so a
        corrupt input fails that check. Only then are the inputs hashed, once all have arrived,
        the corrupt ones dropped and the stripe decoded again from proven pieces."""
        arrivals.wait_for(inputs)
        try:
            return self._rebuild_stripe(t, wanted, arrivals.segments)
        except CorruptData:
            arrivals.wait_all()
            self._hash_arrived(arrivals)
            return self._rebuild_stripe(t, wanted, arrivals.segments)

    def _hash_arrived(self, arrivals: _Arrivals) -> None:
        """Hash every arrived piece not hashed yet against its proof, and drop the corrupt ones."""
        with self._hashing:
            for (kind, index), url in arrivals.unhashed.items():
                file = self.files[kind]
                try:
                    validate_segment(arrivals.segments[(kind, index)], file.root, file.size, segment_root)
                except InvalidSegment as exc:
                    self.scores.corrupt(url)
                    log.warning("%s served a corrupt %s segment %d of 0x%s: %s (scored down to %d)", url, kind, index,
                                self.files["data"].root.hex(), exc.message, self.scores.score(url))
                    del arrivals.segments[(kind, index)]
            arrivals.unhashed = {}

    def _rebuild_stripe(self, t: int, wanted: list[tuple[str, int, str]],
                        fetched: dict[tuple[str, int], SegmentWithProof]) -> list[tuple[str, str, SegmentWithProof]]:
        stripe = self.layout.stripes[t]
        rows = [stripe.data.index(index) if kind == "data" else self.layout.params.k + stripe.parity.index(index)
                for kind, index, _ in wanted]
        pieces = self._stripe_rows(t, rows, fetched)
        return [(url, kind, self._prove(self.files[kind], kind, index, piece, fetched))
                for (kind, index, url), piece in zip(wanted, pieces, strict=True)]
