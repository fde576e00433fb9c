"""Per-node reputation kept by whoever fetches from storage nodes (a node's peer sync, a client).

A node that serves data failing its proof, or describes a file differently from the chain, is
scored down and avoided for ``BAN_S`` (asked only when no other node has the data); an
unreachable node is scored down a little; good data scores a node up, to ``MAX_SCORE``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

BAN_S = 600.0
CORRUPT_PENALTY = 100
UNREACHABLE_PENALTY = 5
SUCCESS_REWARD = 1
MAX_SCORE = 20


class PeerScores:
    """Per-peer reputation: served good data (+), unreachable (-), corrupt data (--, banned)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._scores: dict[str, int] = {}
        self._banned_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def good(self, url: str) -> None:
        with self._lock:
            self._scores[url] = min(MAX_SCORE, self._scores.get(url, 0) + SUCCESS_REWARD)

    def unreachable(self, url: str) -> None:
        with self._lock:
            self._scores[url] = self._scores.get(url, 0) - UNREACHABLE_PENALTY

    def corrupt(self, url: str) -> None:
        with self._lock:
            self._scores[url] = self._scores.get(url, 0) - CORRUPT_PENALTY
            self._banned_until[url] = self.clock() + BAN_S

    def score(self, url: str) -> int:
        return self._scores.get(url, 0)

    def banned(self, url: str) -> bool:
        return self._banned_until.get(url, 0.0) > self.clock()

    def rank(self, urls: Sequence[str]) -> list[str]:
        """Best first; banned peers last (asked only when no other peer has the data)."""
        return sorted(urls, key=lambda u: (self.banned(u), -self.score(u)))
