"""The fine-tuning worker's :class:`~zgos.compute.finetune.worker.BlobStore` on the storage
network, and the content id of a model file.

Datasets and deliverables live in zgos storage, addressed by their data root (the same root
0G's SDKs compute, storage.md §5). ``download`` goes through :class:`StorageClient`, which
checks every segment's Merkle proof against the root before keeping it, so the bytes returned
are the bytes the root commits to; ``upload`` submits the file to ``Flow`` (skipped when the
network already holds it, so a repeated upload after a crash is free) and waits until the
nodes have finalized it. A model's id on chain (``ModelRegistry``, ``FineTuningServing``) is
the storage root of its file, whether or not the file was uploaded: anyone holding the file
can recompute it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from zgos.storage.client import StorageClient
from zgos.storage.hasher import build_file_tree

BLOB_PREFIX = "zgos-blob-"
ROOT_SIDECAR_SUFFIX = ".root.json"


def compute_file_root(path: Path) -> bytes:
    """The 32-byte storage data root of the file at ``path`` (its content id)."""
    return build_file_tree(path).root


def model_file_root(path: Path) -> bytes:
    """:func:`compute_file_root` of a model file, cached beside it (keyed by size and mtime)."""
    stat = path.stat()
    sidecar = path.with_name(path.name + ROOT_SIDECAR_SUFFIX)
    key = {"size": stat.st_size, "mtime": stat.st_mtime}
    try:
        cached = json.loads(sidecar.read_text())
        if {k: cached[k] for k in key} == key:
            return bytes.fromhex(cached["root"])
    except (OSError, ValueError, KeyError):
        pass
    root = compute_file_root(path)
    with contextlib.suppress(OSError):
        partial = sidecar.with_name(sidecar.name + f".{os.getpid()}")
        partial.write_text(json.dumps({**key, "root": root.hex()}))
        os.replace(partial, sidecar)
    return root


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

    def download(self, root: bytes) -> bytes:
        fd, name = tempfile.mkstemp(prefix=BLOB_PREFIX, dir=self.scratch_dir)
        os.close(fd)
        try:
            self.client.download(root, Path(name))
            return Path(name).read_bytes()
        finally:
            Path(name).unlink(missing_ok=True)
