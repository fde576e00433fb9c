"""The reward pools of ``Reward.sol`` as pure rules (storage.md §2.3, with this repo's change).

Each 8 GiB pricing chunk has a pool. A fill adds fees to it and restarts its linear schedule:
what was still locked plus the new fee is released evenly over ``release_seconds`` from the
fill. An accepted PoRA answer pays its miner half of the pool's released-but-unpaid reward.
Nothing is paid before it is released and nothing is released before it is filled, so the
total paid never exceeds the fees deposited.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CLAIM_DIVISOR = 2  # a miner gets half of the claimable reward per accepted answer


@dataclass(frozen=True)
class Pool:
    total: int = 0  # fees credited
    released_at_start: int = 0  # released before the current schedule began
    distributed: int = 0  # paid to miners
    start_time: int = 0  # when the current schedule began (0: never filled)


def compute_released(pool: Pool, now: int, release_seconds: int) -> int:
    """Reward released by ``now``: the part released before the last fill plus a linear share
    of the rest, all of it after ``release_seconds``."""
    if pool.start_time == 0:
        return 0
    scheduled = pool.total - pool.released_at_start
    elapsed = now - pool.start_time
    share = scheduled if elapsed >= release_seconds else scheduled * elapsed // release_seconds
    return pool.released_at_start + share


def compute_claimable(pool: Pool, now: int, release_seconds: int) -> int:
    return compute_released(pool, now, release_seconds) - pool.distributed


def process_fill(pool: Pool, amount: int, now: int, release_seconds: int) -> Pool:
    """Credit ``amount`` at ``now`` (``now`` > 0): the locked rest and the fee restart the schedule."""
    released = compute_released(pool, now, release_seconds)
    return replace(pool, total=pool.total + amount, released_at_start=released, start_time=now)


def process_claim(pool: Pool, now: int, release_seconds: int) -> tuple[Pool, int]:
    """Pay one accepted answer: half the claimable reward. Returns the pool and the payout."""
    amount = compute_claimable(pool, now, release_seconds) // CLAIM_DIVISOR
    return replace(pool, distributed=pool.distributed + amount), amount
