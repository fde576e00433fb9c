"""``ErasureClient``: upload files with ``k+m`` erasure coding, download them with missing
segments rebuilt, report their health and repair lost pieces.

It runs the storage pipelines of ``StorageClient`` with the erasure-coding stages of
``zgos.storage.erasurecode``:

* upload: hash -> submit the data file -> place (``ErasurePlacement``) -> encode and submit the
  parity file -> record data root -> parity root -> (k, m, groups) in ``ErasureRegistry`` (only
  the data root's first Flow submitter may) -> send every node the data and parity segments of
  its shard -> finalize both.
* download: check the record fits the file, fetch and rebuild (``Rebuild``), atomic like
  ``StorageClient.download``; when there is no record, it does not fit, or the rebuild fails,
  the plain download.
* health and repair: ``zgos.storage.ecrepair`` (whole-file rebuild when a rebuilt piece
  cannot be proven from its partner).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.storage.client import StorageClient
from zgos.storage.contracts import ErasureRecord, ErasureRegistry, FileRecord
from zgos.storage.download import atomic_output
from zgos.storage.echealth import HealthReport, Piece, StripeHealth, check_health, describe
from zgos.storage.ecrepair import StripeRepair, StripeStream, Unprovable
from zgos.storage.erasurecode import (
    ErasurePlacement,
    Holdings,
    InvalidRecord,
    LiveNodes,
    Rebuild,
    check_parity_size,
    check_record,
    encode_parity,
    files_on_chain,
    live_shards,
    survey,
    write_parity_file,
)
from zgos.storage.hasher import build_file_tree
from zgos.storage.locations import FileLocation, Holding
from zgos.storage.nodeclient import CorruptData, NodeConnection, StorageError
from zgos.storage.spec.erasure import ErasureParams, StripeLayout
from zgos.storage.spec.filetree import FileTree
from zgos.storage.upload import Payload, Submitted, hash_file

__all__ = [
    "EcUploadResult", "ErasureClient", "ErasureRecord", "ErasureRegistry", "HealthReport", "InvalidRecord", "Piece",
    "StripeHealth", "Unprovable", "describe", "write_parity_file",
]

log = logging.getLogger(__name__)


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
class Inspection:
    """The health of a file, and what it was worked out from."""

    report: HealthReport
    live: LiveNodes
    layout: StripeLayout  # checked against the file and the chain
    files: dict[str, Submitted]  # "data" and "parity"
    unsynced: list[tuple[NodeConnection, Submitted]]  # live nodes that did not describe a file as it is


@dataclass(frozen=True)
class _Survey:
    """What one ``survey`` round and the chain say of a data file and its parity file."""

    roots: dict[str, bytes]  # "data" and "parity"
    live: LiveNodes
    dead: list[str]
    holdings: Holdings
    on_chain: dict[str, FileRecord | None]

    def held(self, url: str, kind: str) -> Holding | None:
        """What the node at ``url`` said it holds of the ``kind`` file (None: nothing)."""
        return self.holdings[url][list(self.roots).index(kind)]


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
        self.close()

    def close(self) -> None:
        self.storage.close()

    def live_shards(self) -> tuple[LiveNodes, list[str]]:
        """(node, shard) of every node that answers ``zgs_getShardConfig``; URLs of the others."""
        return live_shards(self.storage.nodes)

    def _record(self, root: bytes) -> ErasureRecord | None:
        if self.registry is None:
            raise StorageError("erasure coding needs the chain (ErasureRegistry)", "run against a deployment")
        return self.registry.record_of(root)

    def _required_record(self, root: bytes) -> ErasureRecord:
        record = self._record(root)
        if record is None:
            raise StorageError(f"0x{root.hex()} was not uploaded with erasure coding (no ErasureRegistry record)")
        return record

    def _survey(self, root: bytes, record: ErasureRecord) -> _Survey:
        """Each node asked once (``survey``) for its shard and what it holds of the data file
        ``root`` and its parity file, while the chain is asked for their first submissions."""
        roots = {"data": root, "parity": record.parity_root}
        with ThreadPoolExecutor(1) as pool:  # the nodes are asked while the chain is
            surveyed = pool.submit(survey, self.storage.nodes, list(roots.values()))
            on_chain = files_on_chain(self.storage.flow, record)
            live, dead, holdings = surveyed.result()
        return _Survey(roots, live, dead, holdings, on_chain)

    def _file(self, found: _Survey, kind: str) -> Submitted:
        """The ``kind`` file of ``found``, at a node that describes it as the chain does."""
        locations = [h.location for url in found.holdings if (h := found.held(url, kind)) is not None]
        return self._located(found.roots[kind], kind, locations, found.on_chain[kind])

    # --- upload --------------------------------------------------------------------------

    def upload(self, path: Path, params: ErasureParams, *, fee: int | None = None,
               tree: FileTree | None = None) -> EcUploadResult:
        """Upload ``path`` with ``params`` erasure coding; resumable (call again after a failure)."""
        uploads = self.storage.uploads
        if self.storage.flow is None or self.account is None or self.registry is None:
            raise StorageError("an erasure-coded upload needs a chain account")
        if not path.is_file() or path.stat().st_size == 0:
            raise StorageError(f"{path} is not a non-empty file")
        placement = ErasurePlacement(self.live_shards()[0], params)
        tree = hash_file(path, tree)
        self._check_owner(tree.root)
        data = Payload(path, tree, uploads.submit(tree, b"", fee))
        layout = placement.layout(data.file)
        with tempfile.TemporaryDirectory(prefix="zgos-parity-") as scratch:
            parity = encode_parity(uploads, data, layout, Path(scratch), fee)
            record = ErasureRecord(tree.root, parity.tree.root, params, placement.groups, self.account.address)
            if self.registry.record_of(tree.root) != record:
                self.registry.record(self.account, record)
            sent = uploads.deliver([data, parity], placement)
        return EcUploadResult(tree.root, parity.tree.root, data.file.seq, parity.file.seq, params, len(layout.stripes),
                              tree.num_segments, layout.parity_segments, sent)

    def _check_owner(self, root: bytes) -> None:
        """Only the first uploader of ``root`` may record its erasure coding."""
        assert self.storage.flow is not None and self.account is not None
        first = self.storage.flow.file_of(root)
        if first is not None and first.submitter.lower() != self.account.address.lower():
            raise StorageError(f"0x{root.hex()} was first uploaded by {first.submitter}: only its uploader can "
                               "record its erasure coding", "upload it without --ec, or ask its uploader")

    # --- download ------------------------------------------------------------------------

    def download(self, root: bytes, out: Path) -> int:
        """Download ``root`` to ``out``, rebuilding missing segments; return the bytes written.
        A file without an erasure record, or whose record does not fit it or does not rebuild
        it, is downloaded as a plain file."""
        record = self._record(root)
        if record is None:
            return self.storage.download(root, out).size
        try:
            found = self._survey(root, record)
            data = self._file(found, "data")
            layout = check_record(record, found.on_chain, data)
            with atomic_output(out, data.size) as handle:
                Rebuild(handle, found.live, layout, data, self.workers).run(lambda: self._file(found, "parity"))
            return data.size
        except StorageError as exc:
            log.warning("erasure-coded download of 0x%s failed (%s); trying the plain download", root.hex(), exc.message)
        return self.storage.download(root, out).size

    def stream(self, root: bytes) -> tuple[int, Iterator[bytes]]:
        """Size and verified bytes of the erasure-coded file ``root``, in order, missing
        segments rebuilt as they come (``StripeStream``: each segment proven before it is given
        out). Raises ``StorageError`` when there is no record or it does not fit the file."""
        record = self._required_record(root)
        found = self._survey(root, record)
        data = self._file(found, "data")
        layout = check_record(record, found.on_chain, data)
        parity = self._file(found, "parity")
        check_parity_size(parity, layout, root)
        return data.size, StripeStream(found.live, layout, {"data": data, "parity": parity}, self.workers).chunks()

    # --- health and repair ---------------------------------------------------------------

    def health(self, root: bytes) -> HealthReport:
        return self._inspect(root).report

    def _inspect(self, root: bytes) -> Inspection:
        """The health of ``root``, and what it was worked out from. Each node is asked once
        (``survey``) for its shard and what it holds of both files."""
        record = self._required_record(root)
        found = self._survey(root, record)
        roots, live, dead = found.roots, found.live, found.dead
        files = {kind: self._file(found, kind) for kind in roots}
        layout = check_record(record, found.on_chain, files["data"])  # InvalidRecord: nothing to check or repair against
        known = {(node.url, kind): holding for node, _ in live for kind in roots
                 if (holding := found.held(node.url, kind)) is not None and holding.location.seq == files[kind].seq}
        held = {(node.url, kind): known[(node.url, kind)].segments if (node.url, kind) in known
                else self._held(node, files[kind]) for node, _ in live for kind in roots}
        report = HealthReport(root, record, [], dead)
        check_health(report, live, layout, files, held)
        unsynced = [(node, files[kind]) for node, _ in live for kind in roots if (node.url, kind) not in known]
        return Inspection(report, live, layout, files, unsynced)

    def _located(self, root: bytes, kind: str, locations: list[FileLocation], on_chain: FileRecord | None) -> Submitted:
        """The ``kind`` file ``root`` with its size from the chain (``on_chain``, its first Flow
        submission), at a node of ``locations`` that describes it so."""
        if on_chain is None:
            raise InvalidRecord(f"the {kind} file 0x{root.hex()} was never submitted to the Flow contract")
        file, found = self.storage.downloads.check_locations(root, locations, on_chain.size)
        if not found:
            raise StorageError(f"no live node knows the {kind} file 0x{root.hex()}", "check the root, or wait for log sync")
        return Submitted(root, found[0].seq, file.size, found[0].start_entry)

    @staticmethod
    def _held(node: NodeConnection, file: Submitted) -> frozenset[int]:
        """The segments of ``file`` that ``node`` holds, asked by its transaction (none if it
        cannot say): for a node whose holdings name the file under another one, or not at all."""
        try:
            return frozenset(node.held_segments(file.seq)[0])
        except StorageError:
            return frozenset()

    def repair(self, root: bytes) -> tuple[HealthReport, int]:
        """Restore every piece a live node of its shard lacks; return the health before and the
        number of segments restored. Pieces whose shard has no live node stay missing.

        Stripe by stripe (``StripeRepair``), so only the affected stripes are read. If a piece
        cannot be proven from its partner (lost too), rebuild the whole file and its parity."""
        inspection = self._inspect(root)
        report, live, layout, files = inspection.report, inspection.live, inspection.layout, inspection.files
        if not report.missing:
            return report, 0
        for node, file in inspection.unsynced:
            if node.url in report.missing:  # it cannot take pieces of a file it has not synced
                node.wait_synced(file.seq)
        try:
            return report, StripeRepair(report, live, layout, files, self.workers, self.storage.scores).run()
        except Unprovable as exc:
            log.warning("repairing 0x%s from the whole file (slower): %s", root.hex(), exc)
            return report, self._repair_whole_file(report, live, layout, files)

    def _repair_whole_file(self, report: HealthReport, live: LiveNodes, layout: StripeLayout,
                           files: dict[str, Submitted]) -> int:
        by_url = {n.url: n for n, _ in live}
        restored = 0
        with tempfile.TemporaryDirectory(prefix="zgos-repair-") as scratch:
            data_path, parity_path = Path(scratch) / "data", Path(scratch) / "parity"
            self.download(report.root, data_path)
            write_parity_file(data_path, layout, parity_path)
            paths = {"data": data_path, "parity": parity_path}
            payloads = {kind: Payload(paths[kind], build_file_tree(paths[kind]), files[kind]) for kind in paths}
            if payloads["parity"].tree.root != report.record.parity_root:
                raise CorruptData("the recomputed parity does not match the recorded parity root",
                                  "the uploader recorded a wrong parity file; re-upload with --ec")
            for url, pieces in report.missing.items():
                for kind in sorted({kind for kind, _ in pieces}):
                    restored += self.storage.uploads.send(by_url[url], payloads[kind])
        return restored
