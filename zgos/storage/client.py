"""``StorageClient``: upload files to zgos storage nodes and download them back, verified.

The client surface other networks import. It holds the nodes (``zgos.storage.nodeclient``),
the Flow and the paying account, and runs the one upload pipeline (``zgos.storage.upload``:
hash -> submit -> place -> send -> finalize, here with ``ReplicaPlacement``) and the one
download pipeline (``zgos.storage.download``). Erasure coding (``zgos.storage.ecclient``) runs
the same pipelines with its own placement and stages.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import FlowContract
from zgos.storage.download import (
    STREAM_WINDOW_SEGMENTS,
    Downloader,
    VerifiedFile,
    atomic_output,
)
from zgos.storage.locations import FileLocation, describes_file
from zgos.storage.nodeclient import (
    CorruptData,
    NodeConnection,
    NodeMisbehaved,
    NodeUnavailable,
    StorageError,
    locate,
)
from zgos.storage.scores import PeerScores
from zgos.storage.spec.filetree import FileTree
from zgos.storage.upload import Payload, Progress, ReplicaPlacement, UploadPipeline, hash_file

__all__ = [
    "DEFAULT_WORKERS",
    "HTTP_TIMEOUT_S",
    "MAX_NODE_RESPONSE_BYTES",
    "CorruptData",
    "FileLocation",
    "NodeConnection",
    "NodeMisbehaved",
    "NodeUnavailable",
    "Progress",
    "StorageClient",
    "StorageError",
    "UploadResult",
    "VerifiedFile",
    "atomic_output",
    "describes_file",
]

DEFAULT_WORKERS = 4
HTTP_TIMEOUT_S = 60.0
# The largest answer a node may send: a file's held-segment list for a ~1 TB file (4M indexes);
# a segment is 256 KiB (~350 KB as JSON-RPC).
MAX_NODE_RESPONSE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    root: bytes
    tx_seq: int
    tx_hash: str | None  # None when the file was already on chain
    size: int
    segments_sent: int


class StorageClient:
    """Upload and download files; use as a context manager to close connections.

    Every call to a node is guarded (``zgos.runtime.outbound``): ``timeout_s`` is its total
    time, answers are capped at ``MAX_NODE_RESPONSE_BYTES``, and node URLs that came from the
    registry or an indexer must pass ``policy`` (URLs the user typed in need not: the default)."""

    def __init__(self, nodes: Sequence[str], chain: Chain | None = None, flow_address: str | None = None,
                 account: LocalAccount | None = None, workers: int = DEFAULT_WORKERS,
                 timeout_s: float = HTTP_TIMEOUT_S, fast_path: bool | None = None,
                 policy: AddressPolicy = OPEN_POLICY) -> None:
        if not nodes:
            raise StorageError("no storage nodes given", "pass --node URL or start the devnet")
        self.http = OutboundClient(policy, deadline_s=timeout_s, max_response_bytes=MAX_NODE_RESPONSE_BYTES,
                                   max_connections=4 * workers * len(nodes))
        self.nodes = [NodeConnection(url, self.http, fast_path) for url in nodes]
        self.chain = chain
        self.flow = FlowContract(chain, flow_address) if chain is not None and flow_address else None
        self.account = account
        self.workers = workers
        self.scores = PeerScores()  # nodes that described a file falsely or served bad bytes
        self.uploads = UploadPipeline(self.nodes, self.flow, account, workers)
        self.downloads = Downloader(self.nodes, self.flow, workers, self.scores)

    def __enter__(self) -> StorageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.http.close()

    # --- lookups -------------------------------------------------------------------------

    def locate(self, root: bytes | None = None, seq: int | None = None, finalized: bool = True) -> list[FileLocation]:
        """Nodes that know the file (finalized ones only, by default)."""
        return locate(self.nodes, root, seq, finalized)

    def info(self, root: bytes | None = None, seq: int | None = None) -> FileLocation:
        found = self.locate(root, seq, finalized=False)
        if not found:
            what = f"root 0x{root.hex()}" if root is not None else f"tx seq {seq}"
            raise StorageError(f"no node knows a file with {what}", "check the root, or wait for log sync")
        return sorted(found, key=lambda loc: not loc.info["finalized"])[0]

    def known_submission(self, tree: FileTree) -> list[FileLocation]:
        """Nodes that already know the file of ``tree`` (see ``UploadPipeline.known_submission``)."""
        return self.uploads.known_submission(tree)

    # --- upload --------------------------------------------------------------------------

    def upload(self, path: Path, *, tags: bytes = b"", fee: int | None = None, replicas: int = 1,
               progress: Progress | None = None, wait_finalized: bool = True,
               tree: FileTree | None = None, new_entry: bool = False) -> UploadResult:
        """Upload ``path`` to ``replicas`` nodes of every shard; resumable (call again after any
        failure). A file already on the flow is not submitted again unless ``new_entry``."""
        tree = hash_file(path, tree)
        placement = ReplicaPlacement(self.nodes, replicas)
        failed: dict[str, str] = {}
        placement.targets([], failed)  # fail before paying when the nodes cannot hold it
        file = self.uploads.submit(tree, tags, fee, always=new_entry)
        sent = self.uploads.deliver([Payload(path, tree, file)], placement, progress, wait_finalized, failed)
        return UploadResult(tree.root, file.seq, file.tx_hash, tree.size, sent)

    # --- download ------------------------------------------------------------------------

    def download(self, root: bytes, out: Path, progress: Progress | None = None) -> VerifiedFile:
        """Download the file with data root ``root`` to ``out``, verified; atomic."""
        return self.downloads.download(root, out, progress)

    def stream(self, root: bytes, window: int = STREAM_WINDOW_SEGMENTS,
               located: tuple[VerifiedFile, list[FileLocation]] | None = None) -> tuple[VerifiedFile, Generator[bytes, None, None]]:
        """The file ``root`` as verified chunks in order (see ``Downloader.stream``)."""
        return self.downloads.stream(root, window, located)

    def size_of(self, root: bytes) -> int | None:
        """The byte size of the file ``root`` from its first Flow submission (None: no chain)."""
        return self.downloads.size_of(root)

    def verified_locations(self, root: bytes, finalized: bool = True) -> tuple[VerifiedFile, list[FileLocation]]:
        """The file ``root`` and the nodes that describe it as the chain does (see ``Downloader``)."""
        return self.downloads.verified_locations(root, finalized)
