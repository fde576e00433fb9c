"""Sequential state-changing transactions per second: ``Chain.transact`` (estimate, nonce
manager, receipt in the same call via eth_sendRawTransactionSync) vs web3.py's own
``send_transaction`` + ``wait_for_transaction_receipt`` (0.1 s polling) on the same anvil, through
web3's stock ``HTTPProvider``. And the client CPU of one chain read (``Chain.block_number``,
through the kept-alive transport) vs the same read through web3's stock provider: services poll
the chain several times a second, so this is most of an idle service's CPU. The same for a
contract view call (``Chain.call``: web3 without its validation middleware)."""

from __future__ import annotations

import time

from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder

from bench.harness import bench_chain, report
from zgos.chain.accounts import devnet_account
from zgos.chain.artifacts import load_artifact

TXS = 40
READS = 500


def read_cpu_ms(read: object) -> float:
    """Client CPU milliseconds per call of ``read`` (process time, after one warm-up call)."""
    read()  # type: ignore[operator]
    started = time.process_time()
    for _ in range(READS):
        read()  # type: ignore[operator]
    return (time.process_time() - started) / READS * 1e3


def main() -> None:
    with bench_chain(block_time_s=0.05) as env:
        chain, sink = env.chain, Account.create().address
        sender = devnet_account(5)
        started = time.perf_counter()
        for _ in range(TXS):
            chain.transact(sender, to=sink, value=1)
        ours = TXS / (time.perf_counter() - started)

        w3 = Web3(HTTPProvider(env.anvil.url))
        baseline_sender = devnet_account(6)
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(baseline_sender), layer=0)
        started = time.perf_counter()
        for _ in range(TXS):
            tx_hash = w3.eth.send_transaction({"from": baseline_sender.address, "to": sink, "value": 1})
            w3.eth.wait_for_transaction_receipt(tx_hash)
        baseline = TXS / (time.perf_counter() - started)
        report("sequential tx with receipt", ours, baseline, "tx/s", goal=">= 1.0x")
        report("client CPU of one chain read (eth_blockNumber)", read_cpu_ms(chain.block_number),
               read_cpu_ms(lambda: w3.eth.block_number), "ms", goal="recorded")
        flow, abi = env.deployment.address("Flow"), load_artifact("Flow").abi
        ours_flow, stock_flow = chain.contract("Flow", flow), w3.eth.contract(address=flow, abi=abi)
        report("client CPU of one contract view call (Flow.MAX_DEPTH)",
               read_cpu_ms(lambda: chain.call(ours_flow.functions.MAX_DEPTH())),
               read_cpu_ms(lambda: stock_flow.functions.MAX_DEPTH().call()), "ms", goal="recorded")
