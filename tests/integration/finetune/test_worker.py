"""The provider's fine-tuning worker on a real chain with real (tiny-model) training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.finetune.blobstore import DirectoryBlobStore
from tests.integration.finetune.conftest import advance_time, task_events
from zgos.chain.client import Chain
from zgos.compute.finetune.contracts import FineTuningMarket, OnchainStatus
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.tiny import TinyBaseModel
from zgos.compute.finetune.worker import (
    FineTuningWorker,
    WorkerConfig,
    unpack_deliverable,
)
from zgos.compute.spec.dataset import Example, encode_dataset
from zgos.compute.spec.sealing import (
    SealingError,
    decrypt_deliverable,
    open_sealed_key,
)
from zgos.compute.spec.tasks import TaskState, TrainingParams
from zgos.runtime.netutil import wait_until

PRICE = 10**9
MAX_BYTES = 4096
MAX_TOKENS = 2000
DATASET = encode_dataset(
    (Example("Q: What is the secret word?\nA:", " The secret word is zebracorn."),) * 2
)
PARAMS = TrainingParams(epochs=2, learning_rate=1e-2)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def provider(market: FineTuningMarket, new_account: LocalAccount) -> LocalAccount:
    market.add_or_update_service(
        new_account,
        "http://127.0.0.1:1/ft",
        PRICE,
        MAX_BYTES,
        MAX_TOKENS,
        [TinyBaseModel.model_hash],
    )
    return new_account


@pytest.fixture
def store(tmp_path: Path) -> DirectoryBlobStore:
    return DirectoryBlobStore(tmp_path / "store")


@pytest.fixture
def worker(
    market: FineTuningMarket, provider: LocalAccount, store: DirectoryBlobStore, tmp_path: Path
) -> Iterator[FineTuningWorker]:
    torch.set_num_threads(1)
    base = TinyBaseModel()
    with Journal(tmp_path / "journal.db") as journal:
        yield FineTuningWorker(
            market,
            provider,
            journal,
            store,
            {base.model_hash: base},
            WorkerConfig(tmp_path / "work", from_block=market.chain.block_number()),
        )


def _order(
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    store: DirectoryBlobStore,
    dataset: bytes = DATASET,
    fee: int = 10**15,
) -> int:
    root = store.upload(dataset)
    nonce = int.from_bytes(os.urandom(8), "big")
    return market.create_task(
        user, provider.address, TinyBaseModel.model_hash, root, PARAMS.encode(), fee, nonce
    )


def _drive(
    worker: FineTuningWorker, task_id: int, until: set[TaskState], steps: int = 50
) -> TaskState:
    for _ in range(steps):
        worker.run_once()
        state = worker.journal.get(task_id).state
        if state in until:
            return state
    raise AssertionError(f"task {task_id} stuck in {worker.journal.get(task_id).state}")


def test_worker_trains_delivers_and_releases_the_key_only_to_the_user(
    chain: Chain,
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    store: DirectoryBlobStore,
    worker: FineTuningWorker,
    tmp_path: Path,
) -> None:
    task_id = _order(market, user, provider, store)
    progress: list[int] = []
    worker.on_progress = lambda _, p: progress.append(p.step)
    _drive(worker, task_id, {TaskState.DELIVERED})
    assert progress == [1, 2, 3, 4]
    record = worker.journal.get(task_id)
    assert record.tokens and record.loss is not None and record.step == 4
    assert [step for step, _ in worker.journal.losses(task_id)][-1] == 4, "the loss curve ends at the last step"
    onchain = market.get_task(task_id)
    assert onchain.status == OnchainStatus.DELIVERED and onchain.result_root == record.result_root
    # the user downloads (verified against the on-chain root) and acknowledges
    blob = store.download(onchain.result_root)
    market.acknowledge(user, task_id, onchain.result_root)
    provider_before = chain.balance(provider.address)
    _drive(worker, task_id, {TaskState.FINISHED})
    settled = task_events(market, "FeesSettled", task_id)
    assert len(settled) == 1 and settled[0]["toProvider"] == onchain.fee
    assert chain.balance(provider.address) > provider_before
    sealed = market.get_task(task_id).sealed_key
    key = open_sealed_key(sealed, bytes(user.key))
    files = unpack_deliverable(decrypt_deliverable(blob, key), tmp_path / "mine")
    assert "adapter_model.safetensors" in files and "adapter_config.json" in files
    with pytest.raises(SealingError):
        open_sealed_key(sealed, bytes(provider.key))
    with pytest.raises(SealingError):
        open_sealed_key(sealed, bytes(Account.create().key))


@pytest.mark.parametrize(
    ("dataset", "fee", "reason"),
    [
        (b"", 10**15, "the dataset is empty"),
        (b'{"text": "ok"}\n{oops\n', 10**15, "line 2 is not valid JSON"),
        (b'{"text": "' + b"a" * MAX_BYTES + b'"}', 10**15, "over the quota"),
        (DATASET, 1, "below the price"),
    ],
)
def test_bad_dataset_is_rejected_before_any_fee_is_taken(
    chain: Chain,
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    store: DirectoryBlobStore,
    worker: FineTuningWorker,
    dataset: bytes,
    fee: int,
    reason: str,
) -> None:
    task_id = _order(market, user, provider, store, dataset, fee)
    user_before = chain.balance(user.address)
    assert _drive(worker, task_id, {TaskState.FAILED, TaskState.DELIVERED}) == TaskState.FAILED
    assert reason in (worker.journal.get(task_id).error or "")
    cancelled = task_events(market, "TaskCancelled", task_id)
    assert reason in cancelled[0]["reason"]
    assert market.get_task(task_id).status == OnchainStatus.CANCELLED
    assert chain.balance(user.address) == user_before + fee  # the whole escrow came back


def test_unacknowledged_deliverable_is_settled_with_the_penalty_after_the_timeout(
    chain: Chain,
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    store: DirectoryBlobStore,
    worker: FineTuningWorker,
) -> None:
    task_id = _order(market, user, provider, store)
    _drive(worker, task_id, {TaskState.DELIVERED})
    worker.run_once()
    assert worker.journal.get(task_id).state == TaskState.DELIVERED  # waits for the user
    advance_time(chain, market.ack_timeout_s() + 1)
    _drive(worker, task_id, {TaskState.FINISHED})
    task = market.get_task(task_id)
    settled = task_events(market, "FeesSettled", task_id)
    assert settled[0]["toProvider"] == task.fee * market.penalty_percent() // 100
    assert task.sealed_key == b""


def _start_provider(
    chain: Chain,
    market: FineTuningMarket,
    provider: LocalAccount,
    tmp_path: Path,
    from_block: int,
    delay_s: float,
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "provider.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.finetune.provider_proc",
            chain.rpc_url,
            market.address,
            str(tmp_path / "journal.db"),
            str(tmp_path / "store"),
            str(tmp_path / "work"),
            str(from_block),
            str(delay_s),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ZGOS_PRIVATE_KEY": bytes(provider.key).hex()},
    )


def _kill9(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def _journal_state(path: Path, task_id: int) -> tuple[TaskState | None, int]:
    with Journal(path) as journal:
        try:
            record = journal.get(task_id)
        except KeyError:
            return None, 0
        return record.state, record.step


@pytest.mark.slow
def test_kill_9_during_training_and_during_delivery_resumes_without_double_charging(
    chain: Chain,
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    tmp_path: Path,
) -> None:
    store = DirectoryBlobStore(tmp_path / "store")
    journal_path = tmp_path / "journal.db"
    from_block = chain.block_number()
    long_params = TrainingParams(epochs=20, learning_rate=1e-2)
    many = tuple(Example(f"Q: What is {i} + {i}?\nA:", f" {2 * i}") for i in range(15))
    root = store.upload(encode_dataset(many))  # 300 steps: long enough to be killed
    task_id = market.create_task(
        user, provider.address, TinyBaseModel.model_hash, root, long_params.encode(), 10**16, 1
    )
    process = _start_provider(chain, market, provider, tmp_path, from_block, delay_s=3.0)
    try:
        assert wait_until(lambda: _journal_state(journal_path, task_id)[1] >= 5, 60, 0.05)
        assert _journal_state(journal_path, task_id)[0] == TaskState.TRAINING
        _kill9(process)  # during training
        process = _start_provider(chain, market, provider, tmp_path, from_block, delay_s=3.0)
        assert wait_until(
            lambda: _journal_state(journal_path, task_id)[0] == TaskState.DELIVERING, 300, 0.05
        )
        _kill9(process)  # during delivery (the upload takes 3 s)
        assert market.get_task(task_id).status == OnchainStatus.STARTED
        process = _start_provider(chain, market, provider, tmp_path, from_block, delay_s=0.0)
        assert wait_until(
            lambda: market.get_task(task_id).status == OnchainStatus.DELIVERED, 120, 0.2
        )
        onchain = market.get_task(task_id)
        store.download(onchain.result_root)
        market.acknowledge(user, task_id, onchain.result_root)
        assert wait_until(
            lambda: _journal_state(journal_path, task_id)[0] == TaskState.FINISHED, 60, 0.2
        )
        _kill9(process)
        process = _start_provider(chain, market, provider, tmp_path, from_block, delay_s=0.0)
        assert wait_until(lambda: "worker ready" in (tmp_path / "provider.log").read_text(), 60)
        settled = task_events(market, "FeesSettled", task_id)
        assert len(settled) == 1 and settled[0]["toProvider"] == 10**16
        key = open_sealed_key(market.get_task(task_id).sealed_key, bytes(user.key))
        assert decrypt_deliverable(store.download(onchain.result_root), key)
    finally:
        _kill9(process)
