"""The fine-tuning marketplace over real storage: a user orders a fine-tune of a dataset kept in a
real storage node, the provider's worker downloads it (verified), trains (tiny model), uploads
the sealed adapter; the user verifies and acknowledges it, decrypts it, registers the tuned model,
and the provenance walk ties the model back to the dataset's uploader, every link verified."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from eth_account.signers.local import LocalAccount

from tests.integration.finetune.conftest import funded_account
from tests.integration.storage.conftest import RunningNode
from tests.integration.storage.httpproxy import StorageNodeProxy
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.models import publish_base_models
from zgos.compute.finetune.storage import StorageBlobStore
from zgos.compute.finetune.tiny import TinyBaseModel
from zgos.compute.finetune.tinycard import TINY_LICENCE, TINY_MODEL_HASH, TINY_NAME
from zgos.compute.finetune.user import FineTuningUser, TaskStateError
from zgos.compute.finetune.worker import FineTuningWorker, WorkerConfig
from zgos.compute.spec.dataset import Example, InvalidDataset, encode_dataset
from zgos.compute.spec.tasks import TaskState, TrainingParams
from zgos.provenance.graph import Provenance
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.storage.client import StorageClient

PRICE = 10**9
DATASET = encode_dataset(
    (Example("Q: What is the secret word?\nA:", " The secret word is zebracorn."),) * 2
)
PARAMS = TrainingParams(epochs=2, learning_rate=1e-2)


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> ModelRegistry:
    return ModelRegistry(chain, deployment.address("ModelRegistry"))


def _store(storage_node: RunningNode, chain: Chain, deployment: Deployment, account: LocalAccount,
           scratch: Path) -> StorageBlobStore:
    client = StorageClient([storage_node.url], chain, deployment.address("Flow"), account)
    return StorageBlobStore(client, scratch)


@pytest.fixture
def provider(market: FineTuningMarket, registry: ModelRegistry, new_account: LocalAccount, storage_node: RunningNode,
             chain: Chain, deployment: Deployment, tmp_path: Path) -> LocalAccount:
    market.add_or_update_service(new_account, "http://127.0.0.1:1/ft", PRICE, 4096, 2000, [TINY_MODEL_HASH])
    store = _store(storage_node, chain, deployment, new_account, tmp_path / "publish")
    try:  # uploads the tiny model's card and registers it, unless an earlier test did
        publish_base_models({TINY_MODEL_HASH: (TINY_NAME, TINY_LICENCE, TinyBaseModel())}, registry, store, new_account)
    finally:
        store.client.close()
    assert registry.is_registered(TINY_MODEL_HASH)
    return new_account


@pytest.fixture
def worker(market: FineTuningMarket, provider: LocalAccount, storage_node: RunningNode, chain: Chain,
           deployment: Deployment, tmp_path: Path) -> Iterator[FineTuningWorker]:
    torch.set_num_threads(1)
    base = TinyBaseModel()
    store = _store(storage_node, chain, deployment, provider, tmp_path / "provider-scratch")
    with Journal(tmp_path / "journal.db") as journal:
        yield FineTuningWorker(market, provider, journal, store, {base.model_hash: base},
                               WorkerConfig(tmp_path / "work", from_block=chain.block_number()))
    store.client.close()


def _user(market: FineTuningMarket, registry: ModelRegistry, account: LocalAccount, storage_node: RunningNode,
          chain: Chain, deployment: Deployment, tmp_path: Path) -> FineTuningUser:
    store = _store(storage_node, chain, deployment, account, tmp_path / f"scratch-{account.address}")
    return FineTuningUser(market, registry, account, store, tmp_path / f"user-{account.address}")


def _drive(worker: FineTuningWorker, task_id: int, until: set[TaskState]) -> TaskState:
    for _ in range(60):
        worker.run_once()
        if task_id in worker.journal.task_ids() and (state := worker.journal.get(task_id).state) in until:
            return state
    raise AssertionError(f"task {task_id} stuck in {worker.journal.get(task_id).state}")


def test_dataset_in_storage_to_registered_model_with_verified_lineage(
    chain: Chain, deployment: Deployment, market: FineTuningMarket, registry: ModelRegistry,
    provider: LocalAccount, worker: FineTuningWorker, storage_node: RunningNode, new_account: LocalAccount,
    tmp_path: Path,
) -> None:
    user = _user(market, registry, funded_account(chain, new_account, 10**19), storage_node, chain, deployment, tmp_path)
    service = user.service(provider.address)
    base = user.model(service, TINY_NAME)
    quote = user.quote(service, base, DATASET, PARAMS)
    assert quote.fee == PRICE * quote.tokens * PARAMS.epochs and quote.examples == 2
    root = user.upload_dataset(DATASET)
    task_id = user.create(quote, root, PARAMS)

    assert _drive(worker, task_id, {TaskState.DELIVERED, TaskState.FAILED}) == TaskState.DELIVERED
    # someone else can neither acknowledge nor decrypt the user's task
    other = _user(market, registry, funded_account(chain, new_account, 10**19), storage_node, chain, deployment, tmp_path)
    with pytest.raises(TaskStateError, match="only the task's user"):
        other.acknowledge(task_id)
    assert user.acknowledge(task_id) == market.get_task(task_id).result_root
    assert _drive(worker, task_id, {TaskState.FINISHED}) == TaskState.FINISHED
    with pytest.raises(TaskStateError, match="only the task's user"):
        other.decrypt(task_id, tmp_path / "stolen")

    result = user.decrypt(task_id, tmp_path / "adapter")
    assert "adapter_model.safetensors" in result.files and result.registered
    model = registry.get_model(result.model_id)
    assert (model.parent, model.datasets, model.task_id, model.trainer) == (
        TINY_MODEL_HASH, (root,), task_id, provider.address)

    tree = Provenance(chain, deployment, policy=DEVNET_POLICY).show("0x" + result.model_id.hex())
    nodes = {n.kind: n for n in tree.walk()}
    assert tree.kind == "model" and tree.verified
    assert nodes["task"].verified and nodes["task"].facts["user"] == user.account.address
    assert nodes["dataset"].verified and nodes["dataset"].facts["uploader"] == user.account.address
    assert nodes["deliverable"].facts["uploader"] == provider.address
    assert all(n.verified for n in tree.walk() if n.kind != "model" or n.facts.get("base") is False)
    # from the dataset root: the uploader and the model trained on it
    by_root = Provenance(chain, deployment, policy=DEVNET_POLICY).show("0x" + root.hex())
    assert by_root.kind == "dataset" and any(c.kind == "model" and c.id == "0x" + result.model_id.hex()
                                             for c in by_root.children)


def test_bad_dataset_is_rejected_by_the_user_client_before_any_upload_or_fee(
    chain: Chain, deployment: Deployment, market: FineTuningMarket, registry: ModelRegistry,
    provider: LocalAccount, storage_node: RunningNode, new_account: LocalAccount, tmp_path: Path,
) -> None:
    user = _user(market, registry, new_account, storage_node, chain, deployment, tmp_path)
    service = user.service(provider.address)
    before = chain.balance(new_account.address)
    for bad, reason in ((b"", "empty"), (b"{oops\n", "not valid JSON"),
                        (b'{"text": "' + b"a" * 5000 + b'"}', "over the quota")):
        with pytest.raises(InvalidDataset, match=reason):
            user.quote(service, TINY_MODEL_HASH, bad, PARAMS)
    assert chain.balance(new_account.address) == before


def test_a_dataset_over_the_quota_is_refused_before_any_byte_is_downloaded(
    chain: Chain, deployment: Deployment, market: FineTuningMarket, registry: ModelRegistry,
    provider: LocalAccount, storage_node: RunningNode, new_account: LocalAccount, tmp_path: Path,
) -> None:
    """A 1-wei task naming a dataset far over the provider's 4,096-byte quota: the provider
    reads the size from the dataset's Flow submission, refuses (full refund) and never asks the
    storage node for a byte; every request it sends to storage goes through a counting proxy."""
    user = funded_account(chain, new_account, 10**19)
    big = encode_dataset(tuple(Example(f"Q: {i}?\nA:", f" {i}") for i in range(600)))
    assert len(big) > 3 * 4096
    with StorageClient([storage_node.url], chain, deployment.address("Flow"), user) as uploader:
        path = tmp_path / "big.jsonl"
        path.write_bytes(big)
        root = uploader.upload(path).root
    counter = StorageNodeProxy(storage_node.url)
    store = StorageBlobStore(StorageClient([counter.url], chain, deployment.address("Flow"), provider), tmp_path / "s")
    try:
        with Journal(tmp_path / "journal.db") as journal:
            worker = FineTuningWorker(market, provider, journal, store, {TINY_MODEL_HASH: TinyBaseModel()},
                                      WorkerConfig(tmp_path / "work", from_block=chain.block_number()))
            task_id = market.create_task(user, provider.address, TINY_MODEL_HASH, root, PARAMS.encode(), 1, 1)
            assert _drive(worker, task_id, {TaskState.FAILED, TaskState.TRAINING}) == TaskState.FAILED
            error = journal.get(task_id).error or ""
        assert f"the dataset is {len(big)} bytes, over the quota of 4096 bytes" in error, error
        assert market.get_task(task_id).status.name == "CANCELLED", "refunded on chain"
        assert counter.segment_requests() == [], "not one byte of the dataset was fetched"
        assert store.download(root) == big and counter.segment_requests(), "the proxy does count downloads"
    finally:
        store.client.close()
        counter.stop()
