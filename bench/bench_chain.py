"""Sequential state-changing transactions per second: ``Chain.transact`` (estimate, nonce
manager, receipt in the same call via eth_sendRawTransactionSync) vs web3.py's own
``send_transaction`` + ``wait_for_transaction_receipt`` (0.1 s polling) on the same anvil."""

from __future__ import annotations

import time

from eth_account import Account
from web3.middleware import SignAndSendRawMiddlewareBuilder

from bench.harness import bench_chain, report
from zgos.chain.accounts import devnet_account

TXS = 40


def main() -> None:
    with bench_chain(block_time_s=0.05) as env:
        chain, sink = env.chain, Account.create().address
        sender = devnet_account(5)
        started = time.perf_counter()
        for _ in range(TXS):
            chain.transact(sender, to=sink, value=1)
        ours = TXS / (time.perf_counter() - started)

        w3 = chain.w3
        baseline_sender = devnet_account(6)
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(baseline_sender), layer=0)
        started = time.perf_counter()
        for _ in range(TXS):
            tx_hash = w3.eth.send_transaction({"from": baseline_sender.address, "to": sink, "value": 1})
            w3.eth.wait_for_transaction_receipt(tx_hash)
        baseline = TXS / (time.perf_counter() - started)
        report("sequential tx with receipt", ours, baseline, "tx/s", goal=">= 1.0x")
