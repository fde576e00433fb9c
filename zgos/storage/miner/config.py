"""What a storage node's miner is told (``zg storage node --miner-key ...``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MinerConfig:
    mine_address: str  # the PoraMine contract
    threads: int = 1  # PoRA worker threads
    cpu_fraction: float = 0.25  # busy fraction of each worker (it sleeps the rest)
    poll_s: float = 2.0  # seconds between control ticks
    beneficiary: str | None = None  # default: the miner's own address
