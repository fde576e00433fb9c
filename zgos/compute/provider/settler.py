"""The broker's settlement side: the receipts it accepts, the ledger watch, settlement rounds.

``Settler`` stores each user's signed cumulative receipt (only up to what was served), watches
the ledger for this provider's ``RefundRequested`` and ``Funded`` events, and settles receipts
above what the chain has paid through ``settleBatch`` (``zgos.compute.spec.settlement`` plans the
chunks), on its own thread so that it never queues behind admission's chain reads.

Restart behaviour: everything billed is in the request log; receipts too, with what the chain
has paid. ``settle_due`` runs at start (after reading the chain's settled totals of users with
due receipts), on a schedule, and right away for users whose ``RefundRequested`` the ledger
watch saw, so receipted fees are collected before a refund unlocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from eth_account.signers.local import LocalAccount

from zgos.compute.contracts import ComputeContracts, SubAccount
from zgos.compute.provider.books import UserBook, UserView
from zgos.compute.provider.store import RequestLog
from zgos.compute.provider.wire import BrokerError, SettlementRound
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.settlement import (
    DueReceipt,
    compute_chunk_size,
    ledger_watch_ranges,
    plan_settlement,
)
from zgos.core.errors import TxReverted

log = logging.getLogger(__name__)
T = TypeVar("T")

# Why settleBatch skipped a voucher (InferenceServing.SKIP_*).
SKIP_ALREADY_SETTLED = 2
SKIP_NO_BALANCE = 3


@dataclass
class _Round:
    """What one settlement round did."""

    txs: list[str] = field(default_factory=list)
    gas: int = 0
    paid: int = 0
    settled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self, due: int) -> SettlementRound:
        return SettlementRound(users=due, settled=len(self.settled), paid=self.paid, txs=self.txs,
                               tx=self.txs[-1] if self.txs else None, gas=self.gas, skipped=self.skipped,
                               failed=self.failed)


class Settler:
    """Receipts, the ledger watch and settlement rounds of one provider. ``books`` and ``views``
    are the broker's own (shared, not copied): receipts raise a book's ``receipted``, and a
    settlement or a ledger event updates or drops a user's cached chain view."""

    def __init__(self, contracts: ComputeContracts, provider: LocalAccount, log: RequestLog,
                 books: dict[str, UserBook], views: dict[str, UserView]) -> None:
        self.contracts = contracts
        self.provider = provider
        self.address = v.normalize_address(provider.address)
        self.log = log
        self.books = books
        self.views = views
        self.settled_total = 0
        self.last_settlement: SettlementRound | None = None
        self.refunding: dict[str, int] = {}  # user -> when its pending refund unlocks
        self._watched_block: int | None = None  # last block the ledger watch has read
        self._reconciled: set[str] = set()  # users whose chain-paid total was read since start
        self._failing: dict[str, int] = {}  # user -> receipt total whose settlement reverted
        self._settle_lock = asyncio.Lock()
        self._settlement_thread = ThreadPoolExecutor(1, thread_name_prefix="settlement")

    async def accept_receipt(self, user: str, total: int, signature: bytes) -> int:
        """Store a user's signed cumulative receipt. Refused (400) when it is not the user's
        signature, or when its total exceeds what was served to that user: a receipt with no
        served request behind it (a sybil's) never reaches a settlement."""
        try:
            receipt = v.Receipt(v.normalize_address(user), self.address, total)
            v.validate_signed_by(self.contracts.domain, receipt, signature, receipt.user)
        except (v.InvalidMessage, v.InvalidSignature) as exc:
            raise BrokerError(400, "bad-receipt", f"receipt refused: {exc}") from None
        book = self.books.get(receipt.user)
        if book is None or not 0 < total <= book.served:
            served = 0 if book is None else book.served
            raise BrokerError(400, "receipt-without-service",
                              f"receipt refused: total {total} is not within the {served} neuron served to "
                              f"{receipt.user}")
        if self.log.save_receipt(receipt, signature):
            book.receipted = max(book.receipted, total)
        return book.receipted

    def start(self) -> None:
        """Where the ledger watch begins (call before the first settlement)."""
        self._watched_block = self.contracts.chain.block_number()

    def watch_ledger(self) -> bool:
        """Read this provider's ``RefundRequested`` and ``Funded`` events since the last call
        (one ``eth_getLogs`` per ``ledger_watch_ranges`` range). A refund marks the user for settlement
        now; funding (which cancels a refund) lets a sub-account found empty be settled again.
        Returns whether a refunding user has a due receipt."""
        latest = self.contracts.chain.block_number()
        if self._watched_block is None:
            self._watched_block = latest
        for first, last in ledger_watch_ranges(self._watched_block, latest):
            for event in self.contracts.provider_ledger_events(self.address, first, last):
                self.views.pop(event.user, None)  # its balance or refund changed: read it afresh
                if event.kind == "RefundRequested":
                    log.info("%s asks for a refund (block %d): settling it first", event.user, event.block)
                    self.refunding[event.user] = event.unlock_at
                else:
                    self.refunding.pop(event.user, None)
                    self.log.set_no_balance([event.user], False)
            self._watched_block = last
        return bool(self.refunding) and any(owed.receipt.user in self.refunding for owed in self.log.due(self.address))

    async def settle_due(self, *, everything: bool = False) -> SettlementRound:
        """Settle receipts above what the chain has paid: all of them when ``everything``,
        else those of users with a pending refund."""
        async with self._settle_lock:
            return await self.on_settlement_thread(lambda: self._settle_sync(everything))

    async def on_settlement_thread(self, work: Callable[[], T]) -> T:
        """Run the settlement side's chain work on its own thread, so that it never queues
        behind the admission side's chain reads (a burst of new users can keep the shared
        pool busy for seconds, and a refund must be settled long before it unlocks)."""
        return await asyncio.get_running_loop().run_in_executor(self._settlement_thread, work)

    def _reconcile(self, users: Iterable[str]) -> None:
        """Record what the chain paid ``users`` while this broker was not watching: one read
        per user, the first time it is up for settlement (a refund round reads only its own
        users, never every receipt on file)."""
        for user in users:
            if user not in self._reconciled:
                self.log.record_settled(user, self.contracts.settled(user, self.address))
                self._reconciled.add(user)

    def _settle_sync(self, everything: bool) -> SettlementRound:
        if everything:  # a scheduled round retries what reverted before (the cause may be gone)
            self._failing.clear()
        self._reconcile([d.receipt.user for d in self.log.due(self.address)
                         if everything or d.receipt.user in self.refunding])
        due = [replace(d, refund_unlock_at=self.refunding.get(d.receipt.user, 0)) for d in self.log.due(self.address)
               if d.receipt.user not in self._failing or self._failing[d.receipt.user] != d.receipt.total]
        if not everything:
            due = [d for d in due if d.refund_unlock_at]
        round_ = _Round()
        if due:
            gas_limit = int(self.contracts.chain.w3.eth.get_block("latest")["gasLimit"])
            for chunk in plan_settlement(due, compute_chunk_size(gas_limit)):
                self._settle_chunk(chunk, round_)
        result = round_.summary(len(due))
        if round_.txs:
            self.settled_total += round_.paid
            self.last_settlement = result
            log.info("settled %d users in %d transactions, %d neuron", len(round_.settled), len(round_.txs),
                     round_.paid)
        return result

    def _settle_chunk(self, chunk: list[DueReceipt], round_: _Round) -> None:
        """One ``settleBatch``; a chunk that reverts (at estimation: nothing is spent) is split
        in halves until the failing entry is alone, which is set aside until the next scheduled
        round or until its receipt grows. (``settleBatch`` skips a bad voucher instead of
        reverting, so a revert means something beyond one entry: too much gas for this chain,
        or a ledger that refuses every charge.)"""
        try:
            tx = self.contracts.settle_batch(self.provider, [(d.receipt, d.signature) for d in chunk])
        except TxReverted as exc:
            if len(chunk) == 1:
                user = chunk[0].receipt.user
                log.warning("settling %s reverts (%s): set aside until the next scheduled round", user, exc)
                self._failing[user] = chunk[0].receipt.total
                round_.failed.append(user)
                return
            half = len(chunk) // 2
            self._settle_chunk(chunk[:half], round_)
            self._settle_chunk(chunk[half:], round_)
            return
        round_.txs.append(tx.tx_hash)
        round_.gas += tx.gas_used
        for event in tx.events(self.contracts.serving, "Settled"):
            user, amount, total = v.normalize_address(event["args"]["user"]), int(event["args"]["amount"]), \
                int(event["args"]["total"])
            self.log.record_settled(user, total)
            self._note_settled(user, amount, total)
            round_.paid += amount
            round_.settled.append(user)
        for event in tx.events(self.contracts.serving, "SettlementSkipped"):
            user, reason = v.normalize_address(event["args"]["user"]), int(event["args"]["reason"])
            round_.skipped.append(user)
            if reason == SKIP_NO_BALANCE:
                self.log.set_no_balance([user], True)
            elif reason == SKIP_ALREADY_SETTLED:
                self.log.record_settled(user, self.contracts.settled(user, self.address))
            else:  # cannot happen for a receipt checked on arrival, unless the deployment changed
                log.warning("dropping %s's receipt: the contract refuses its signature", user)
                self.log.drop_receipt(user)

    def _note_settled(self, user: str, amount: int, total: int) -> None:
        """Keep the cached chain view in step with a settlement (one atomic swap: admission
        reads it from the event loop)."""
        view = self.views.get(user)
        if view is not None:
            account = view.sub_account
            balance = max(0, account.balance - amount)
            self.views[user] = replace(view, settled=total, sub_account=SubAccount(
                balance, min(account.pending_refund, balance), account.refund_unlock_at))
