"""What the broker keeps in memory per user: its book (a mirror of the request log) and its
cached on-chain view. Admission reads and updates both; settlement keeps them in step."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from zgos.compute.contracts import SubAccount


@dataclass
class UserView:
    sub_account: SubAccount
    acknowledged_signer: str
    settled: int
    fetched_at: float


@dataclass
class UserBook:
    """In-memory mirror of the request log for one user (rebuilt from it at start)."""

    served: int = 0
    inflight: int = 0
    requests: int = 0
    receipted: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
