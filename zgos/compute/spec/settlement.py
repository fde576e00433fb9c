"""Settlement rounds: which due receipts a provider settles, in what order and in what chunks.

A round pays every stored receipt above what the chain has paid (``DueReceipt``) through
``InferenceServing.settleBatch``, in transactions that fit the contract's batch limit and a share
of the block gas limit (``compute_chunk_size``), users with a pending refund first
(``plan_settlement``). The rules behind the order are in ``zgos.compute.spec.vouchers``' docstring.

This module is pure: no I/O, clocks or randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zgos.compute.spec.vouchers import Receipt, _uint

MAX_VOUCHERS_PER_BATCH = 200  # InferenceServing.MAX_VOUCHERS_PER_BATCH: a larger batch reverts
# Upper bound of the gas one voucher costs in settleBatch. Measured on anvil: ~46,700 for a
# user's first settlement (cold slots: settled 0 → total, the sub-account balance; the ledger
# call, two events, ~260 bytes of calldata); the bound leaves ~30% for a costlier chain.
SETTLE_GAS_PER_VOUCHER = 60_000
SETTLE_BATCH_BASE_GAS = 60_000  # transaction base cost and the batch's own overhead (~48,000)
SETTLE_BLOCK_GAS_PERCENT = 50  # one settlement transaction uses at most half a block

LOG_RANGE_BLOCKS = 5_000  # most blocks one eth_getLogs of the ledger watch covers


def ledger_watch_ranges(watched: int, latest: int, span: int = LOG_RANGE_BLOCKS) -> list[tuple[int, int]]:
    """The inclusive block ranges a ledger watch that has read every block up to ``watched``
    reads next to reach ``latest``: consecutive, each at most ``span`` blocks, none when there is
    no new block. Each round continues from the last block of the one before, so no block is
    read twice and none is skipped (a skipped block hides its refunds from the provider)."""
    if span < 1:
        raise ValueError(f"span must be at least 1 block, not {span}")
    return [(first, min(latest, first + span - 1)) for first in range(watched + 1, latest + 1, span)]


@dataclass(frozen=True)
class DueReceipt:
    """A stored receipt above what the chain has paid, with what orders it in a round:
    ``due_since`` (when its oldest unpaid part was receipted) and ``refund_unlock_at`` (when the
    user's pending refund unlocks; 0 = none)."""

    receipt: Receipt
    signature: bytes
    due_since: float
    refund_unlock_at: int = 0


def compute_chunk_size(block_gas_limit: int) -> int:
    """Vouchers per settlement transaction: the contract's batch limit, and no more than fit in
    ``SETTLE_BLOCK_GAS_PERCENT`` of a block at ``SETTLE_GAS_PER_VOUCHER`` each (at least 1)."""
    budget = _uint(block_gas_limit, "gasLimit") * SETTLE_BLOCK_GAS_PERCENT // 100 - SETTLE_BATCH_BASE_GAS
    return max(1, min(MAX_VOUCHERS_PER_BATCH, budget // SETTLE_GAS_PER_VOUCHER))


def plan_settlement(due: Sequence[DueReceipt], chunk_size: int) -> list[list[DueReceipt]]:
    """Cut the due receipts into transactions of at most ``chunk_size``, in the order they must
    be paid: users with a pending refund first (earliest unlock first: their money leaves the
    sub-account then), then the oldest debt first; ties by user address."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    ordered = sorted(due, key=lambda d: (d.refund_unlock_at == 0, d.refund_unlock_at, d.due_since, d.receipt.user))
    return [ordered[i:i + chunk_size] for i in range(0, len(ordered), chunk_size)]
