"""The fine-tuning worker's :class:`~zgos.compute.finetune.worker.BlobStore` on the storage
network, and the content id of a model file.

Datasets and deliverables live in zgos storage, addressed by their data root (the same root
0G's SDKs compute, storage.md §5). ``download`` goes through :class:`StorageClient`, which
checks every segment's Merkle proof against the root before keeping it, so the bytes returned
are the bytes the root commits to; ``upload`` submits the file to ``Flow`` (skipped when the
network already holds it, so a repeated upload after a crash is free) and waits until the
nodes have finalized it; ``size`` reads a root's size from its Flow submission, without
touching the nodes. A model's id on chain (``ModelRegistry``, ``FineTuningServing``) is
the storage root of its file: anyone holding the file can recompute it, and only its first
uploader can register it (``ModelRegistry.registerBaseModel``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ConfigError
from zgos.storage.client import StorageClient

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.chain.client import Chain
    from zgos.chain.deploy import Deployment

BLOB_PREFIX = "zgos-blob-"


def connect_storage(chain: Chain, deployment: Deployment, nodes: Sequence[str] | None,
                    account: LocalAccount | None = None) -> StorageClient:
    """A storage client on ``nodes``, else on the nodes announced in the ``NodeRegistry``."""
    urls = list(nodes or ())
    if not urls:
        registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
        urls = [n.url for n in registry.nodes(NodeKind.STORAGE)]
    if not urls:
        raise ConfigError("no storage node is announced on chain", "start one (`zg devnet up`) or pass --node URL")
    return StorageClient(urls, chain, deployment.address("Flow"), account)


class StorageBlobStore:
    """A ``BlobStore`` over a :class:`StorageClient` (which holds the account paying uploads)."""

    def __init__(self, client: StorageClient, scratch_dir: Path) -> None:
        self.client = client
        self.scratch_dir = scratch_dir
        scratch_dir.mkdir(parents=True, exist_ok=True)

    def upload(self, data: bytes) -> bytes:
        fd, name = tempfile.mkstemp(prefix=BLOB_PREFIX, dir=self.scratch_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return self.client.upload(Path(name)).root
        finally:
            Path(name).unlink(missing_ok=True)

    def upload_file(self, path: Path) -> bytes:
        """Store the file at ``path`` (e.g. a base model); its root."""
        return self.client.upload(path).root

    def size(self, root: bytes) -> int | None:
        """The size of ``root``'s first Flow submission (None if never submitted): read from the
        chain, so checking it against a quota fetches nothing from the storage nodes."""
        flow = self.client.flow
        if flow is None:
            raise ConfigError("the storage client has no chain to read a file's size from")
        first = flow.file_of(root)
        return None if first is None else first.size

    def download(self, root: bytes) -> bytes:
        fd, name = tempfile.mkstemp(prefix=BLOB_PREFIX, dir=self.scratch_dir)
        os.close(fd)
        try:
            self.client.download(root, Path(name))
            return Path(name).read_bytes()
        finally:
            Path(name).unlink(missing_ok=True)
