"""Auditing (issue 17, Performance), against baselines measured in the same run:

* **gas of a storage challenge** (open + the node's answer) against a plain ``Flow.submit``
  of one file, and what it costs per GiB of stored data audited per challenge period;
* **detection**: spot checks against a node that lost a fraction f of a file (``--dishonest
  drop-half``: f = 0.5), the measured chance of catching it within k rounds against the formula
  1 - (1 - f)^k;
* **CPU overhead**: a storage node's CPU under a steady read workload for ``WINDOW_S``, with and
  without an auditor running rounds (spot check + on-chain challenge, answered by the node) at
  one round per ``WINDOW_S`` (the devnet audits once a minute; a shorter window is the harsher
  test). Goal: the auditor adds <= 5%.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_storage import _cpu_seconds, _data_dir, _file, _node
from bench.harness import BenchChain, bench_chain, report
from zgos.alignment.auditor.journal import Journal
from zgos.alignment.auditor.rounds import Auditor, RoundConfig, Subjects
from zgos.alignment.auditor.storage import StorageAudit, StorageNodeRef
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.chain.accounts import PRIVATE_KEY_ENV, devnet_role
from zgos.compute.contracts import ComputeContracts
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.netutil import free_port
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract
from zgos.storage.hasher import build_file_tree

FILE_MIB = int(os.environ.get("ZGOS_BENCH_AUDIT_MIB", "64"))
WINDOW_S = float(os.environ.get("ZGOS_BENCH_AUDIT_WINDOW_S", "20"))
CPU_PAIRS = 3
SPOT_CHECKS = 200
ROUNDS_K = (1, 3, 5, 10)
CHALLENGES = 3
WORKLOAD_MIB = 4
LOOPBACK = AddressPolicy(allow_loopback=True)


def _tx_gas(bc: BenchChain, sender: str, first: int, last: int) -> list[int]:
    """Gas of every transaction ``sender`` sent in blocks ``first..last``."""
    w3 = bc.chain.w3
    used = []
    for number in range(first, last + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"].lower() == sender.lower():  # type: ignore[index]
                used.append(int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"]))  # type: ignore[index]
    return used


def _auditor(bc: BenchChain, nodes: list[StorageNodeRef], work: Path, challenge_every: int) -> Auditor:
    account = devnet_role("auditor")
    contracts = AlignmentContracts.from_deployment(bc.chain, bc.deployment)
    if not contracts.is_auditor(account.address):
        contracts.register_auditor(account, contracts.min_auditor_stake())
    rng = random.Random(1)
    storage = StorageAudit(bc.chain, FlowContract(bc.chain, bc.deployment.address("Flow")), contracts, LOOPBACK,
                           bc.deployment.deploy_block, rng)
    return Auditor(account, contracts, ComputeContracts.from_deployment(bc.chain, bc.deployment),
                   Subjects(list, lambda: nodes), storage, None,
                   lambda: StorageClient([n.url for n in nodes], bc.chain, bc.deployment.address("Flow"), account),
                   Journal(work / f"journal-{challenge_every}.sqlite"), RoundConfig(challenge_every=challenge_every),
                   rng, work)


def bench_gas(bc: BenchChain, auditor: Auditor, operator: str, file_gib: float) -> None:
    flow = FlowContract(bc.chain, bc.deployment.address("Flow"))
    submitted = flow.submit(devnet_role("user"), [build_file_tree(_file(bc.workdir, "tiny.bin", 1)).submission()])
    baseline = submitted.gas_used
    first = bc.chain.block_number() + 1
    for _ in range(CHALLENGES):
        auditor.run_round()
        deadline = time.monotonic() + 30
        while auditor.journal.counts().get("challenges_open", 0) and time.monotonic() < deadline:
            time.sleep(0.5)
            auditor.settle_challenges()
    last = bc.chain.block_number()
    opened = _tx_gas(bc, auditor.account.address, first, last)
    answered = _tx_gas(bc, operator, first, last)
    per_challenge = (sum(opened) + sum(answered)) / CHALLENGES
    print(f"  challenges answered: {auditor.journal.counts()}", flush=True)
    report("gas of one storage challenge (open + answer) vs one Flow.submit", per_challenge, baseline, "gas")
    print(f"  = {per_challenge / file_gib:,.0f} gas per GiB audited per challenge period "
          f"(the node holds {file_gib * 1024:.0f} MiB; one challenge per period)", flush=True)


def bench_detection(auditor: Auditor, liar: StorageNodeRef) -> None:
    caught = 0
    for _ in range(SPOT_CHECKS):
        observation = auditor.storage.spot_check(liar)
        caught += observation is not None and not observation.clean
    rate = caught / SPOT_CHECKS
    fraction = 0.5
    for k in ROUNDS_K:
        measured, formula = 1 - (1 - rate) ** k, 1 - (1 - fraction) ** k
        report(f"P(catch a node missing f={fraction} of a file within {k} rounds), measured vs formula",
               measured, formula, "")
    print(f"  ({caught} of {SPOT_CHECKS} spot checks found a missing segment)", flush=True)


def _workload(url: str, root: bytes, bc: BenchChain, stop: threading.Event, out: Path) -> None:
    with StorageClient([url], bc.chain, bc.deployment.address("Flow"), devnet_role("user")) as client:
        while not stop.is_set():
            client.download(root, out)
            stop.wait(1.0)


def bench_cpu(bc: BenchChain, auditor: Auditor, node_pid: int, url: str, root: bytes) -> None:
    def window(audit: bool) -> float:
        stop = threading.Event()
        worker = threading.Thread(target=_workload, args=(url, root, bc, stop, bc.workdir / "read.out"), daemon=True)
        before = _cpu_seconds(node_pid)
        worker.start()
        if audit:
            auditor.run_round()
        stop.wait(WINDOW_S)
        stop.set()
        worker.join()
        return _cpu_seconds(node_pid) - before

    pairs = [(window(False), window(True)) for _ in range(CPU_PAIRS)]  # alternating: drift hits both alike
    without = statistics.median(p[0] for p in pairs)
    with_audit = statistics.median(p[1] for p in pairs)
    report(f"storage node CPU over {WINDOW_S:.0f} s of reads, with one audit round vs without (median of "
           f"{CPU_PAIRS} alternating pairs)", with_audit, without, "cpu-s", "<= 1.05x")


def main() -> None:
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    with bench_chain(block_time_s=0.2) as bc, tempfile.TemporaryDirectory(prefix="zgos-bench-audit-") as tmp:
        work = Path(tmp)
        operator, liar_operator = devnet_role("storage", 0), devnet_role("storage", 1)
        ports = free_port(), free_port()
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
        honest = _node(_data_dir(bc, work / "honest"), "storage-0", ports[0], work / "honest.log",
                       {**env, PRIVATE_KEY_ENV: operator.key.hex()}, announce=True)
        liar = _node(_data_dir(bc, work / "liar"), "storage-1", ports[1], work / "liar.log",
                     {**env, PRIVATE_KEY_ENV: liar_operator.key.hex(), "ZGOS_TEST_DISHONEST": "1"}, announce=True,
                     extra=("--dishonest", "drop-half", "--no-sync"))
        try:
            contracts = AlignmentContracts.from_deployment(bc.chain, bc.deployment)
            for account in (operator, liar_operator):
                contracts.bond(account, BondKind.STORAGE, contracts.min_bond())
            path = _file(work, "audited.bin", FILE_MIB)
            with StorageClient(urls, bc.chain, bc.deployment.address("Flow"), devnet_role("user")) as client:
                root = client.upload(path, replicas=2).root
            honest_ref = StorageNodeRef(operator.address, urls[0])
            bench_gas(bc, _auditor(bc, [honest_ref], work, challenge_every=1), operator.address, FILE_MIB / 1024)
            bench_detection(_auditor(bc, [], work, challenge_every=0), StorageNodeRef(liar_operator.address, urls[1]))
            bench_cpu(bc, _auditor(bc, [honest_ref], work, challenge_every=1), honest.pid, urls[0], root)
        finally:
            for process in (honest, liar):
                process.terminate()
                process.wait(10)
