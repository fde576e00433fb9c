"""Per-node reputation kept by whoever fetches from storage nodes (a node's peer sync, a client,
the probes of discovery).

A node that serves data failing its proof, or describes a file differently from the chain, is
scored down and avoided for ``BAN_S`` (asked only when no other node has the data); a node the
outbound guard had to cut (past its deadline or size cap) is backed off for a doubling time
(``compute_backoff_s``); an unreachable node is scored down a little; good data scores a node
up, to ``MAX_SCORE``. The last failure's reason is kept for status pages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

BAN_S = 600.0
CORRUPT_PENALTY = 100
UNREACHABLE_PENALTY = 5
MISBEHAVING_PENALTY = 20
SUCCESS_REWARD = 1
MAX_SCORE = 20
FAST_FAILURE_BACKOFF_S = 1.0  # doubled per consecutive failure, up to FAST_FAILURE_MAX_BACKOFF_S
FAST_FAILURE_MAX_BACKOFF_S = 8.0
MISBEHAVING_BACKOFF_S = 10.0  # doubled per consecutive failure, up to MAX_BACKOFF_S
MAX_BACKOFF_S = 300.0


def compute_backoff_s(failures: int, misbehaved: bool) -> float:
    """Seconds before a node that failed ``failures`` times in a row is asked again:
    doubling from ``FAST_FAILURE_BACKOFF_S`` (capped at ``FAST_FAILURE_MAX_BACKOFF_S``), or from
    ``MISBEHAVING_BACKOFF_S`` (capped at ``MAX_BACKOFF_S``) when the guard had to cut it."""
    if failures <= 0:
        return 0.0
    base, cap = (MISBEHAVING_BACKOFF_S, MAX_BACKOFF_S) if misbehaved else (FAST_FAILURE_BACKOFF_S, FAST_FAILURE_MAX_BACKOFF_S)
    return float(min(cap, base * 2 ** min(failures - 1, 32)))


class PeerScores:
    """Per-peer reputation: served good data (+), unreachable (-), cut by the outbound guard
    (--, backed off), corrupt data (--, banned)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._scores: dict[str, int] = {}
        self._banned_until: dict[str, float] = {}
        self._backoff_until: dict[str, float] = {}
        self._misbehaviours: dict[str, int] = {}
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def good(self, url: str) -> None:
        with self._lock:
            self._scores[url] = min(MAX_SCORE, self._scores.get(url, 0) + SUCCESS_REWARD)
            self._misbehaviours.pop(url, None)

    def unreachable(self, url: str, reason: str = "unreachable") -> None:
        with self._lock:
            self._scores[url] = self._scores.get(url, 0) - UNREACHABLE_PENALTY
            self._reasons[url] = reason

    def misbehaved(self, url: str, reason: str) -> None:
        """The guard cut the peer's answer: not asked again until its (doubling) backoff ends."""
        with self._lock:
            self._scores[url] = self._scores.get(url, 0) - MISBEHAVING_PENALTY
            count = self._misbehaviours[url] = self._misbehaviours.get(url, 0) + 1
            self._backoff_until[url] = self.clock() + compute_backoff_s(count, misbehaved=True)
            self._reasons[url] = reason

    def corrupt(self, url: str, reason: str = "served corrupt data") -> None:
        with self._lock:
            self._scores[url] = self._scores.get(url, 0) - CORRUPT_PENALTY
            self._banned_until[url] = self.clock() + BAN_S
            self._reasons[url] = reason

    def score(self, url: str) -> int:
        return self._scores.get(url, 0)

    def banned(self, url: str) -> bool:
        return self._banned_until.get(url, 0.0) > self.clock()

    def backed_off_for(self, url: str) -> float:
        """Seconds until a peer the guard had to cut may be asked again (0: it may now)."""
        return max(0.0, self._backoff_until.get(url, 0.0) - self.clock())

    def reason(self, url: str) -> str:
        return self._reasons.get(url, "")

    def rank(self, urls: Sequence[str]) -> list[str]:
        """Best first; banned and backed-off peers last (asked only when no other peer has the data)."""
        return sorted(urls, key=lambda u: (self.banned(u) or self.backed_off_for(u) > 0, -self.score(u)))
