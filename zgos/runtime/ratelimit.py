"""Per-client rate limits: a token bucket per client address for the expensive public calls a
service names (the service decides what a call costs; the "Rate" row of ``edge.py``'s table).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_RATE_CLIENTS = 10_000


@dataclass(frozen=True)
class RateLimit:
    """``per_s`` units of work per second per client, up to ``burst`` at once; ``per_s`` 0: none."""

    per_s: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.per_s > 0


@dataclass(frozen=True)
class RateRefusal:
    """Why a client must wait, and for how many seconds (``Retry-After``; 0: never, split it)."""

    message: str
    retry_after_s: int


class ClientRateLimiter:
    """Token buckets keyed by client address.

    Rule: a client's bucket holds at most ``burst`` tokens and refills at ``per_s`` tokens a
    second; a request costing ``c`` is admitted iff the bucket holds at least ``c``, which it
    then loses. Over any ``t`` seconds a client is admitted at most ``burst + per_s * t``.
    Memory is bounded: beyond ``max_clients`` buckets the least recently seen is forgotten (a
    forgotten client starts with a full bucket, as a new one does). Thread-safe.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_RATE_CLIENTS) -> None:
        self.limit = limit
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str, cost: float) -> float:
        """Admit ``cost`` units for ``client``: 0.0 if admitted, else the seconds until it
        would be (``math.inf`` for a cost above the burst, which is never admitted)."""
        if not self.limit.enabled or cost <= 0:
            return 0.0
        if cost > self.limit.burst:
            return math.inf
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(client, (self.limit.burst, now))
            tokens = min(self.limit.burst, tokens + (now - at) * self.limit.per_s)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.limit.per_s
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def check(self, client: str, cost: float, unit: str) -> RateRefusal | None:
        """``take``, as the refusal to send (None: admitted); ``unit`` names what is counted."""
        wait = self.take(client, cost)
        if wait <= 0:
            return None
        if math.isinf(wait):
            return RateRefusal(f"this request costs {cost:g} {unit}, more than the rate limit allows at once "
                               f"({self.limit.burst:g}); split it", 0)
        return RateRefusal(f"rate limit: {self.limit.per_s:g} {unit} per second per client; retry in {wait:.1f}s",
                           math.ceil(wait))
