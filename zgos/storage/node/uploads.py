"""Segments that arrive before their transaction: a bounded, expiring in-memory cache.

0G lets a client upload small files (``fileSize <= max_cache_file_size``, 10 MiB) before the
node has synced the ``Submit`` event (storage.md §4.3 step 2). The segments are validated
against their declared root first, then held here until log sync delivers a matching entry,
which flushes them to the store; entries older than ``ttl_s`` are evicted, and the total is
capped so a flood of unsubmitted roots cannot exhaust memory. The cache is not durable: the
node only acknowledges such a segment as *cached* (``isCached``); clients re-send after a
restart (``uploadedSegNum`` tells them what the node holds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zgos.core.errors import ZgError

MAX_CACHE_FILE_BYTES = 10 * 1024 * 1024
MAX_CACHE_TOTAL_BYTES = 256 * 1024 * 1024
CACHE_TTL_S = 300.0


class CacheFull(ZgError):
    """The pre-transaction cache cannot take more data."""


@dataclass
class CachedFile:
    size: int
    created: float
    segments: dict[int, tuple[bytes, bytes, str | None]] = field(default_factory=dict)  # index -> (root, data, proof)

    @property
    def bytes(self) -> int:
        return sum(len(data) for _, data, _ in self.segments.values())


class UploadCache:
    def __init__(self, max_file_bytes: int = MAX_CACHE_FILE_BYTES, max_total_bytes: int = MAX_CACHE_TOTAL_BYTES,
                 ttl_s: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self._files: dict[tuple[bytes, int], CachedFile] = {}
        self._lock = threading.Lock()

    def _evict_expired(self) -> None:
        now = self.clock()
        for key in [k for k, f in self._files.items() if now - f.created > self.ttl_s]:
            del self._files[key]

    def total_bytes(self) -> int:
        return sum(f.bytes for f in self._files.values())

    def check_size(self, size: int) -> None:
        """Raise ``CacheFull`` if a file of ``size`` bytes may not be cached."""
        if size > self.max_file_bytes:
            raise CacheFull(
                f"file of {size} bytes is not on chain yet and too large to cache (max {self.max_file_bytes})",
                "submit the transaction first and upload once the node has synced it",
            )

    def put(self, root: bytes, size: int, index: int, segment_root: bytes, data: bytes, proof: str | None = None) -> bool:
        """Cache a validated segment; False if it was already cached."""
        self.check_size(size)
        with self._lock:
            self._evict_expired()
            cached = self._files.get((root, size))
            if cached is not None and index in cached.segments:
                return False
            if self.total_bytes() + len(data) > self.max_total_bytes:
                raise CacheFull("the node's pre-transaction upload cache is full", "retry later")
            cached = self._files.setdefault((root, size), CachedFile(size, self.clock()))
            cached.segments[index] = (segment_root, data, proof)
            return True

    def has(self, root: bytes, size: int) -> bool:
        with self._lock:
            self._evict_expired()
            return (root, size) in self._files

    def pop(self, root: bytes, size: int) -> CachedFile | None:
        with self._lock:
            self._evict_expired()
            return self._files.pop((root, size), None)
