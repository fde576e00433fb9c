"""Waiting for confirmations: a receipt counts once enough blocks sit on top of its block.

On a chain that reorganises, a mined transaction can leave the canonical chain, as deep as the
reorg, and come back in another block or not at all. ``wait_for_confirmations`` waits until
``confirmations`` blocks follow the transaction's block, then reads the receipt again: the same
block hash means it holds; another block means the transaction moved, and the wait starts again
on that block; no receipt means the reorg dropped it, and the signed transaction is broadcast
again (it is still valid: same nonce, same signature; a node that has it answers "already known")
and waited for. A devnet never reorgs, so its confirmations are 0 and this returns at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from zgos.core.errors import ChainError

log = logging.getLogger(__name__)


def _receipt_or_none(w3: Web3, tx_hash: HexBytes) -> TxReceipt | None:
    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None


def _rebroadcast(w3: Web3, raw: bytes) -> None:
    """Send ``raw`` again; a node that already holds it (or mined it) refuses, which is fine."""
    try:
        w3.eth.send_raw_transaction(raw)
    except (Web3RPCError, ValueError) as exc:
        log.debug("rebroadcast refused: %s", exc)


def wait_for_confirmations(w3: Web3, raw: bytes, receipt: TxReceipt, confirmations: int, *, timeout_s: float,
                           poll_s: float, sleep: Callable[[float], None] = time.sleep) -> TxReceipt:
    """The receipt of signed transaction ``raw`` once ``confirmations`` blocks follow its block
    (see the module docstring); ``ChainError`` after ``timeout_s`` without that."""
    if confirmations <= 0:
        return receipt
    tx_hash = HexBytes(receipt["transactionHash"])
    deadline = time.monotonic() + timeout_s
    current: TxReceipt | None = receipt
    while time.monotonic() < deadline:
        if current is not None and int(w3.eth.block_number) >= int(current["blockNumber"]) + confirmations:
            fresh = _receipt_or_none(w3, tx_hash)
            if fresh is not None and HexBytes(fresh["blockHash"]) == HexBytes(current["blockHash"]):
                return fresh
            log.warning("reorg: transaction %s %s", tx_hash.to_0x_hex(),
                        "left the chain; broadcasting it again" if fresh is None
                        else f"moved to block {int(fresh['blockNumber'])}")
            if fresh is None:
                _rebroadcast(w3, raw)
            current = fresh
        elif current is None:
            current = _receipt_or_none(w3, tx_hash)
        sleep(poll_s)
    raise ChainError(f"transaction {tx_hash.to_0x_hex()} did not get {confirmations} confirmations in {timeout_s:g} s",
                     "the chain may be stalled or reorganising; check the RPC and try again")
