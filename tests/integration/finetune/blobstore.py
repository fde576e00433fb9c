"""A directory of content-addressed blobs standing in for the storage client in worker tests.

It is the worker's injected ``BlobStore`` dependency, not the thing under test: the root is
keccak256 of the bytes (not the storage network's Merkle root), writes are atomic, and reads are
verified against the root, which is the contract the storage client will fulfil.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256


class DirectoryBlobStore:
    def __init__(self, directory: Path, upload_delay_s: float = 0.0) -> None:
        self.directory = directory
        self.upload_delay_s = upload_delay_s
        directory.mkdir(parents=True, exist_ok=True)

    def upload(self, data: bytes) -> bytes:
        root = keccak256(data)
        time.sleep(self.upload_delay_s)
        path = self.directory / root.hex()
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(data)
            os.replace(partial, path)
        return root

    def size(self, root: bytes) -> int | None:
        path = self.directory / root.hex()
        return path.stat().st_size if path.exists() else None

    def download(self, root: bytes) -> bytes:
        path = self.directory / root.hex()
        if not path.exists():
            raise ZgError(f"no blob with root 0x{root.hex()}")
        data = path.read_bytes()
        if keccak256(data) != root:
            raise ZgError(f"blob 0x{root.hex()} does not match its root")
        return data
