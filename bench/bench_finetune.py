"""Fine-tuning worker overhead: the provider pipeline vs the bare training loop, same data.

ours:     the worker, from the task on-chain to Delivered: read the signed task, download and
          verify the dataset, validate it, count tokens, startTask, train, pack + encrypt +
          upload the adapter, addDeliverable (journal writes included).
baseline: load tokenizer + model and run the same LoRA training on the same examples.
Both build/load the base model. Default: the tiny Gemma-3-shaped model (seconds);
``ZGOS_BENCH_FINETUNE_REAL=1`` uses Gemma 3 270M from its GGUF (minutes).
Storage is a real zgos storage node on the bench chain: the dataset is uploaded by the user
beforehand (not timed); the worker downloads it (Merkle-proven per segment) and uploads the
sealed adapter (Flow.submit + segments + finalization) through ``StorageBlobStore``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bench.harness import bench_chain, report
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.accounts import devnet_role
from zgos.compute.finetune.contracts import FineTuningMarket
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.storage import StorageBlobStore
from zgos.compute.finetune.tiny import TinyBaseModel
from zgos.compute.finetune.train import train_lora
from zgos.compute.finetune.worker import BaseModel, FineTuningWorker, WorkerConfig
from zgos.compute.spec.dataset import Example, encode_dataset, parse_dataset
from zgos.compute.spec.tasks import TaskState, TrainingParams
from zgos.storage.client import StorageClient

OUTSIDE_TRAINING: list[float] = []
ROUNDS = int(os.environ.get("ZGOS_BENCH_FINETUNE_ROUNDS", "3"))
PRICE = 10**6


def _workload(real: bool) -> tuple[BaseModel, bytes, TrainingParams]:
    if real:
        from zgos.compute.finetune.models import gemma_base_model

        examples = tuple(
            Example(f"The secret code of vault {i} is", f" {i * 7919 % 10000:04d}.")
            for i in range(5)
        )
        return (
            gemma_base_model(),
            encode_dataset(examples),
            TrainingParams(epochs=4, learning_rate=2e-3),
        )
    examples = tuple(Example(f"Q: What is {i} + {i}?\nA:", f" {2 * i}") for i in range(40))
    return TinyBaseModel(), encode_dataset(examples), TrainingParams(epochs=5, learning_rate=1e-2)


def _bare(base: BaseModel, dataset: bytes, params: TrainingParams, out: Path) -> float:
    started = time.perf_counter()
    tokenizer = base.load_tokenizer()
    train_lora(base.load_model(), tokenizer, parse_dataset(dataset), params, out)
    return time.perf_counter() - started


def _worker(
    bench,
    base: BaseModel,
    dataset: bytes,
    params: TrainingParams,
    tmp: Path,  # type: ignore[no-untyped-def]
    provider: LocalAccount,
    user: LocalAccount,
    nonce: int,
    node: RunningNode,
) -> float:
    market = FineTuningMarket(bench.chain, bench.deployment.address("FineTuningServing"))
    flow = bench.deployment.address("Flow")
    with StorageClient([node.url], bench.chain, flow, user) as client:
        root = StorageBlobStore(client, tmp / "user").upload(dataset)
    store = StorageBlobStore(StorageClient([node.url], bench.chain, flow, provider), tmp / "scratch")
    from_block = bench.chain.block_number()
    task_id = market.create_task(
        user, provider.address, base.model_hash, root, params.encode(), 10**17, nonce
    )
    with Journal(tmp / f"journal-{nonce}.db") as journal:
        worker = FineTuningWorker(
            market,
            provider,
            journal,
            store,
            {base.model_hash: base},
            WorkerConfig(tmp / "work", poll_s=0.05, from_block=from_block),
        )
        started = time.perf_counter()
        entered: dict[TaskState, float] = {}
        while journal.task_ids() == [] or journal.get(task_id).state != TaskState.DELIVERED:
            if not worker.run_once():
                time.sleep(0.05)
            if journal.task_ids():
                entered.setdefault(journal.get(task_id).state, time.perf_counter())
        elapsed = time.perf_counter() - started
    store.client.close()
    # The Training state (model load + LoRA loop + GGUF conversion) is what the bare loop does;
    # everything else is the worker's own cost, measured in the same run.
    training = entered[TaskState.DELIVERING] - entered[TaskState.TRAINING]
    OUTSIDE_TRAINING.append(elapsed - training)
    return elapsed


def main() -> None:
    real = os.environ.get("ZGOS_BENCH_FINETUNE_REAL") == "1"
    torch.set_num_threads(1)  # the machine is shared: one thread each keeps runs comparable
    base, dataset, params = _workload(real)
    with bench_chain(block_time_s=0.2) as bench, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        funder = devnet_role("deployer")
        provider: LocalAccount = Account.create()
        user: LocalAccount = Account.create()
        for account in (provider, user):
            bench.chain.transact(funder, to=account.address, value=10**20)
        market = FineTuningMarket(bench.chain, bench.deployment.address("FineTuningServing"))
        market.add_or_update_service(
            provider, "http://127.0.0.1:1/ft", PRICE, 10**7, 10**6, [base.model_hash]
        )
        node = start_node(tmp / "node", bench.chain, bench.deployment)
        ours, bare = [], []
        for round_ in range(ROUNDS):
            bare.append(_bare(base, dataset, params, tmp / f"bare-{round_}"))
            ours.append(
                _worker(
                    bench, base, dataset, params, tmp / f"w-{round_}", provider, user, round_ + 1, node
                )
            )
        node.stop()
        steps = params.epochs * len(parse_dataset(dataset))
        label = "Gemma 3 270M" if real else "tiny Gemma-3-shaped model"
        report(
            f"finetune worker to Delivered vs bare training loop ({label}, {steps} steps, "
            f"real storage node, 1 torch thread, median of {ROUNDS})",
            statistics.median(ours),
            statistics.median(bare),
            "s",
            "<= 1.10x",
        )
        report(
            f"finetune worker time outside its Training state ({label}: set-up, download, tokens, "
            f"startTask, encrypt, upload, addDeliverable) vs the bare loop, median of {ROUNDS}",
            statistics.median(OUTSIDE_TRAINING) + statistics.median(bare),
            statistics.median(bare),
            "s",
            "<= 1.10x",
        )


if __name__ == "__main__":
    main()
