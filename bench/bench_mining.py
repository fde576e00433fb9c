"""Mining benchmarks, each against a baseline measured in the same run:

* sealing throughput as a node seals (``fasthash.seal_pieces``: natively, one 4 KiB piece per
  SIMD lane) vs one keccak-256 pass over the same bytes (goal >= 0.5x);
* PoRA iterations per second on one core vs the same hash work (scratchpad keccaks and
  64 Blake2b over the 4 KiB mixes) done as bare hashlib calls;
* gas of an accepted ``PoraMine.submit`` (unseal, seal Merkle proof, scratchpad, Blake2b via
  EIP-152, reward payout) vs a ``Flow.submit`` of 1 MiB, measured with a real node and miner.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

import sha3
from eth_account import Account

from bench.harness import BenchChain, bench_chain, report
from zgos.chain.accounts import devnet_role
from zgos.runtime.netutil import free_port, wait_until
from zgos.storage.client import StorageClient
from zgos.storage.contracts import STORAGE_BLOCKS_PER_EPOCH
from zgos.storage.fasthash import WIDEST_LANES, seal_pieces
from zgos.storage.miner.config import MinerConfig
from zgos.storage.miner.loop import Miner
from zgos.storage.node.node import NodeConfig, StorageNode
from zgos.storage.node.server import NodeServer
from zgos.storage.spec.pora import (
    SCRATCHPAD_ROUNDS,
    SEALS_PER_LOAD,
    compute_iteration_hit,
    compute_recall_range,
)
from zgos.storage.spec.sealing import BYTES_PER_SEAL, compute_seal_seed

MIB = 1024 * 1024
SEAL_MIB = 16
ITERATIONS = 300


def bench_sealing() -> None:
    data = os.urandom(SEAL_MIB * MIB)
    miner, context = os.urandom(32), os.urandom(32)
    seeds = b"".join(compute_seal_seed(miner, context, offset // 256) for offset in range(0, len(data), BYTES_PER_SEAL))
    ours = min(_seconds(lambda: seal_pieces(data, seeds)) for _ in range(3))
    baseline = min(_seconds(lambda: sha3.keccak_256(data).digest()) for _ in range(3))
    report(f"sealing {SEAL_MIB} MiB ({WIDEST_LANES} SIMD lanes) vs one keccak pass (throughput, best of 3)",
           SEAL_MIB * MIB / ours / 1e6, SEAL_MIB * MIB / baseline / 1e6, "MB/s", ">= 0.5x")


def _seconds(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def bench_pora() -> None:
    recall = compute_recall_range(1 << 30, 0, 1)
    seals = [os.urandom(BYTES_PER_SEAL) for _ in range(SEALS_PER_LOAD)]
    miner, subtask = os.urandom(32), os.urandom(32)
    began = time.perf_counter()
    for i in range(ITERATIONS):
        compute_iteration_hit(miner, i.to_bytes(32, "big"), subtask, recall, 0, seals, -1)
    ours = ITERATIONS / (time.perf_counter() - began)
    state, mix = os.urandom(64), os.urandom(4224)
    began = time.perf_counter()
    for _ in range(ITERATIONS):
        hashlib.blake2b(os.urandom(128), digest_size=64).digest()
        for _ in range(2 * SCRATCHPAD_ROUNDS + 1):
            sha3.keccak_256(state).digest()
        for _ in range(SEALS_PER_LOAD):
            hashlib.blake2b(mix, digest_size=64).digest()
    baseline = ITERATIONS / (time.perf_counter() - began)
    report("PoRA iterations per second on one core vs the bare hash work", ours, baseline, "it/s", ">= 0.5x")


def bench_answer_gas(bench: BenchChain) -> None:
    chain, deployment = bench.chain, bench.deployment
    mine = chain.contract("PoraMine", deployment.address("PoraMine"))
    chain.transact(devnet_role("deployer"), mine.functions.setDifficulty(1))
    node = StorageNode(NodeConfig(bench.workdir / "node", chain.rpc_url, deployment.address("Flow"), chain.chain_id,
                                  deployment.deploy_block, confirmations=0, poll_s=0.1))
    server = NodeServer("127.0.0.1", free_port(), node, token=None)
    node.start()
    server.start()
    url = server.url
    path = bench.workdir / "file.bin"
    path.write_bytes(os.urandom(MIB))
    user, operator = Account.create(), Account.create()
    for account in (user, operator):
        chain.transact(devnet_role("deployer"), to=account.address, value=10**19)
    with StorageClient([url], chain, deployment.address("Flow"), user) as client:
        result = client.upload(path)
    upload_gas = int(chain.w3.eth.get_transaction_receipt(result.tx_hash)["gasUsed"])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_mine", [hex(STORAGE_BLOCKS_PER_EPOCH + 1)])  # type: ignore[arg-type]
    miner = Miner(node, chain, operator, MinerConfig(deployment.address("PoraMine"), threads=1, cpu_fraction=1.0, poll_s=0.2))
    began = time.perf_counter()
    miner.start()
    try:
        if not wait_until(lambda: miner.status()["answersAccepted"] >= 1, 120):
            raise RuntimeError(f"no accepted answer: {miner.status()}")
        elapsed = time.perf_counter() - began
    finally:
        miner.close()
        server.stop()
        node.stop()
    event = chain.get_logs(mine, "NewSubmission", deployment.deploy_block, chain.block_number())[-1]
    answer_gas = int(chain.w3.eth.get_transaction_receipt(event["transactionHash"])["gasUsed"])
    report("gas per accepted PoRA answer vs Flow.submit of 1 MiB", answer_gas, upload_gas, "gas", "<= 5x")
    print(f"from miner start to an accepted answer (register, open epoch, seal 1 MiB, mine, prove): {elapsed:.1f} s")


def main() -> None:
    bench_sealing()
    bench_pora()
    with bench_chain() as bench:
        bench_answer_gas(bench)


if __name__ == "__main__":
    main()
