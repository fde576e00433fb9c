"""One nonce allocator per sender, safe across threads and processes.

Rule: the next nonce is ``max(chain's pending count, last reservation + 1)``. Reservations are
kept in a small file per (chain, sender) under a file lock, so two processes signing for the
same account never pick the same nonce. A reservation older than ``RESERVATION_TTL_S`` is
ignored (its transaction either reached the pool, and the pending count covers it, or was
lost, and the gap must be refilled). A reservation is also ignored when the chain's pending
count went down since it was made (a reorg, or a devnet reset to older state), because the
transactions it counted on are gone. A failed send calls ``release`` so the gap is refilled
at once.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

RESERVATION_TTL_S = 30.0
LOCK_DIR = Path(tempfile.gettempdir()) / "zgos-nonces"


class NonceManager:
    """Allocates nonces for one sender on one chain (identified by its genesis hash)."""

    def __init__(self, chain_key: str, address: str, pending_count: Callable[[], int]) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        stem = f"{chain_key}-{address.lower()}"
        self._state = LOCK_DIR / f"{stem}.json"
        self._file_lock = FileLock(str(LOCK_DIR / f"{stem}.lock"))
        self._thread_lock = threading.Lock()
        self._pending_count = pending_count

    def _read(self) -> tuple[int, int, float]:
        """(next reserved nonce, the chain's pending count when reserved, when)."""
        try:
            data = json.loads(self._state.read_text())
            return int(data["next"]), int(data.get("seen", 0)), float(data["at"])
        except (OSError, ValueError, KeyError):
            return 0, 0, 0.0

    def _write(self, next_nonce: int, seen: int) -> None:
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"next": next_nonce, "seen": seen, "at": time.time()}))
        tmp.replace(self._state)

    def reserve(self) -> int:
        with self._thread_lock, self._file_lock:
            reserved, seen, at = self._read()
            chain_next = self._pending_count()
            trusted = time.time() - at < RESERVATION_TTL_S and chain_next >= seen
            nonce = max(chain_next, reserved) if trusted else chain_next
            self._write(nonce + 1, chain_next)
            return nonce

    def release(self) -> None:
        """Forget reservations so the next ``reserve`` starts from the chain's pending count."""
        with self._thread_lock, self._file_lock:
            chain_next = self._pending_count()
            self._write(chain_next, chain_next)
