"""``FineTuningUser``: the user side of fine-tuning — quote, create, follow, acknowledge, decrypt.

- **Quote** before any fee: the dataset is parsed against the provider's quota and its tokens
  counted with the base model's own tokenizer, exactly as the provider will
  (:func:`zgos.compute.finetune.train.count_tokens`); fee = price × tokens × epochs. A bad
  dataset raises :class:`~zgos.compute.spec.dataset.InvalidDataset` here, before anything
  is uploaded or escrowed.
- **Create**: upload the dataset (if given as bytes) to storage, sign the task (EIP-712) and
  escrow the fee in ``FineTuningServing``.
- **Acknowledge**: download the deliverable by the on-chain result root (every segment proven
  against it), re-compute its root, keep it, and only then acknowledge that root on-chain.
- **Decrypt**: after settlement, open the sealed key with the user's private key, decrypt and
  unpack the adapter, and register the tuned model in ``ModelRegistry`` (its id, parent,
  dataset, task and trainer are derived or copied from the task by the contract). If the key
  does not open the deliverable, the failure is provable from public data (see the fair
  exchange notes in :mod:`zgos.compute.spec.tasks`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.compute.finetune.contracts import (
    FineTuningMarket,
    ModelRegistry,
    OnchainStatus,
    OnchainTask,
    Service,
)
from zgos.compute.finetune.storage import StorageBlobStore
from zgos.compute.finetune.worker import unpack_deliverable
from zgos.compute.spec.dataset import DatasetQuota, Example, parse_dataset, validate_token_count
from zgos.compute.spec.sealing import decrypt_deliverable, open_sealed_key
from zgos.compute.spec.tasks import TrainingParams, compute_training_fee
from zgos.core.errors import ConfigError, ZgError
from zgos.storage.hasher import build_file_tree_from_bytes

NONCE_BYTES = 16
SETTLE_WAIT_S = 120.0
SETTLE_POLL_S = 0.5


class TaskStateError(ZgError):
    """The task is not in a state that allows this action."""


@dataclass(frozen=True)
class Quote:
    provider: str
    base_model: bytes
    examples: int
    tokens: int
    epochs: int
    price_per_token: int
    fee: int


@dataclass(frozen=True)
class Decrypted:
    task_id: int
    out_dir: Path
    files: list[str]
    model_id: bytes
    registered: bool


def quota_of(service: Service) -> DatasetQuota:
    return DatasetQuota(max_bytes=service.max_dataset_bytes, max_tokens=service.max_tokens)


class FineTuningUser:
    """One user account; ``store`` uploads datasets and downloads deliverables."""

    def __init__(self, market: FineTuningMarket, registry: ModelRegistry, account: LocalAccount,
                 store: StorageBlobStore | None, state_dir: Path) -> None:
        self.market = market
        self.registry = registry
        self.account = account
        self.store = store
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def blobs(self) -> StorageBlobStore:
        if self.store is None:
            raise ConfigError("this action needs storage nodes", "start the devnet or pass --node URL")
        return self.store

    # --- choosing ------------------------------------------------------------------------

    def services(self) -> list[Service]:
        return [self.market.get_service(p) for p in self.market.providers()]

    def service(self, provider: str | None) -> Service:
        """The named provider's service, or the only one registered."""
        if provider is not None:
            return self.market.get_service(provider)
        services = self.services()
        if len(services) != 1:
            names = ", ".join(s.provider for s in services) or "none"
            raise ConfigError(f"{len(services)} fine-tuning providers are registered ({names})",
                              "name one with --provider")
        return services[0]

    def model(self, service: Service, model: str | None) -> bytes:
        """A base model id the service offers: ``model`` (hex id or registered name) or the only one."""
        if model is None:
            if len(service.models) != 1:
                raise ConfigError(f"provider {service.provider} offers {len(service.models)} base models",
                                  "name one with --model (see `zg finetune models`)")
            return service.models[0]
        for offered in service.models:
            if model.lower().removeprefix("0x") == offered.hex():
                return offered
            if self.registry.is_registered(offered) and self.registry.get_model(offered).name == model:
                return offered
        raise ConfigError(f"provider {service.provider} does not offer model {model!r}",
                          "see `zg finetune models`")

    # --- quote and create ----------------------------------------------------------------

    def quote(self, service: Service, base_model: bytes, dataset: bytes, params: TrainingParams,
              examples: tuple[Example, ...] | None = None) -> Quote:
        """Validate ``dataset`` against the quota and price it; raise ``InvalidDataset`` first."""
        from zgos.compute.finetune.models import local_model
        from zgos.compute.finetune.train import count_tokens

        quota = quota_of(service)
        examples = examples or parse_dataset(dataset, quota)
        base = local_model(base_model)
        if base is None:
            raise ConfigError(f"no local tokenizer for base model 0x{base_model.hex()}",
                              "zgos prices datasets for Gemma 3 270M and the test model")
        tokens = count_tokens(base.load_tokenizer(), examples)
        validate_token_count(tokens, quota)
        fee = compute_training_fee(tokens, params.epochs, service.price_per_token)
        return Quote(service.provider, base_model, len(examples), tokens, params.epochs,
                     service.price_per_token, fee)

    def upload_dataset(self, dataset: bytes) -> bytes:
        return self.blobs.upload(dataset)

    def download_dataset(self, root: bytes) -> bytes:
        return self.blobs.download(root)

    def create(self, quote: Quote, dataset_root: bytes, params: TrainingParams) -> int:
        """Sign and create the task escrowing ``quote.fee``; its id."""
        nonce = int.from_bytes(secrets.token_bytes(NONCE_BYTES), "big")
        return self.market.create_task(self.account, quote.provider, quote.base_model, dataset_root,
                                       params.encode(), quote.fee, nonce)

    # --- after creation ------------------------------------------------------------------

    def task(self, task_id: int) -> OnchainTask:
        task = self.market.get_task(task_id)
        if task.status == OnchainStatus.NONE:
            raise ConfigError(f"there is no fine-tuning task {task_id}")
        return task

    def _own_task(self, task_id: int) -> OnchainTask:
        task = self.task(task_id)
        if task.user.lower() != self.account.address.lower():
            raise TaskStateError(f"task {task_id} belongs to {task.user}, not to {self.account.address}",
                                 "only the task's user can acknowledge, cancel or decrypt it")
        return task

    def deliverable_path(self, task_id: int) -> Path:
        return self.state_dir / f"task-{task_id}.deliverable"

    def acknowledge(self, task_id: int) -> bytes:
        """Download and verify the deliverable, then acknowledge its root; returns the root."""
        task = self._own_task(task_id)
        if task.status != OnchainStatus.DELIVERED:
            raise TaskStateError(f"task {task_id} is {task.status.name.lower()}, not delivered",
                                 "wait for `zg finetune status` to show Delivered")
        data = self.blobs.download(task.result_root)
        if build_file_tree_from_bytes(data).root != task.result_root:
            raise TaskStateError(f"the deliverable of task {task_id} does not match its on-chain root",
                                 "not acknowledged; the provider may have uploaded something else")
        path = self.deliverable_path(task_id)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)
        self.market.acknowledge(self.account, task_id, task.result_root)
        return task.result_root

    def cancel(self, task_id: int) -> None:
        task = self._own_task(task_id)
        if task.status != OnchainStatus.CREATED:
            raise TaskStateError(f"task {task_id} is {task.status.name.lower()}: only a task the provider "
                                 "has not started can be cancelled")
        self.market.cancel_task(self.account, task_id)

    def wait_settled(self, task_id: int, timeout_s: float = SETTLE_WAIT_S) -> OnchainTask:
        deadline = time.monotonic() + timeout_s
        while True:
            task = self._own_task(task_id)
            if task.status == OnchainStatus.SETTLED:
                return task
            if task.status != OnchainStatus.ACKNOWLEDGED:
                raise TaskStateError(f"task {task_id} is {task.status.name.lower()}",
                                     "acknowledge the deliverable first: `zg finetune ack ID`")
            if time.monotonic() > deadline:
                raise TaskStateError(f"the provider has not settled task {task_id} yet",
                                     "try again in a minute; the key is released at settlement")
            time.sleep(SETTLE_POLL_S)

    def decrypt(self, task_id: int, out_dir: Path, *, register: bool = True, name: str | None = None,
                licence: str = "") -> Decrypted:
        """Open the released key, decrypt and unpack the adapter into ``out_dir``, register it."""
        task = self.wait_settled(task_id)
        if not task.sealed_key:
            raise TaskStateError(f"task {task_id} was settled without a key (it was never acknowledged)")
        path = self.deliverable_path(task_id)
        data = path.read_bytes() if path.is_file() else self.blobs.download(task.result_root)
        key = open_sealed_key(task.sealed_key, bytes(self.account.key))
        package = decrypt_deliverable(data, key)
        files = unpack_deliverable(package, out_dir)
        model_id = self.registry.tuned_model_id(task_id)
        registered = False
        if register and not self.registry.is_registered(model_id):
            base_name = (self.registry.get_model(task.base_model).name
                         if self.registry.is_registered(task.base_model) else "model")
            self.registry.register_fine_tuned_model(self.account, task_id, name or f"{base_name}-ft{task_id}", licence)
            registered = True
        return Decrypted(task_id, out_dir, files, model_id, registered)


def dataset_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"no dataset file at {path}")
    return path.read_bytes()

