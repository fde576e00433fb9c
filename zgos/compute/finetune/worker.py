"""The provider's fine-tuning worker: a persistent task pipeline driven by the chain.

For each ``TaskCreated`` naming this provider the worker runs the state machine of
:mod:`zgos.compute.spec.tasks`, journaling every state before acting on it
(:mod:`zgos.compute.finetune.journal`):

- **SettingUp**: read the task event; recover the user's public key from the EIP-712 task
  signature; decode the signed training parameters; check the dataset's size as the chain
  records it against the service quota *before fetching a byte of it*; download the dataset by
  root from storage (the store verifies it); validate it against the quota; count tokens with
  the base model's tokenizer and check ``fee ≥ price × tokens × epochs``. Any bad input →
  ``rejectTask`` (full refund) and Failed; otherwise ``startTask`` (the user can no longer cancel).
- **Training**: LoRA training with progress ``(step, loss)`` in the journal; the PEFT adapter
  (and its GGUF LoRA when the base GGUF is known) is saved to the task's work directory.
- **Delivering**: a fresh AES-256-GCM key is journaled *before* use; the packed adapter is
  encrypted and uploaded (content-addressed, so a repeat gives the same root); the key is
  sealed to the user's public key (ECIES) and journaled; the root is recorded with
  ``addDeliverable`` together with the commitment to that sealed key
  (:func:`zgos.compute.spec.tasks.compute_key_commitment`).
- **Delivered → Acknowledged → Finished**: when the user acknowledges on-chain, the committed
  sealed key is released by ``settleFees`` (the contract accepts no other); if the user never
  acknowledges within the contract's timeout, the task settles with the penalty split.

Restart behaviour: SettingUp, Training and Delivering are repeated from their start (each is
idempotent; a state tried ``max_attempts`` times fails with a full refund). Every chain action
is preceded by a read of the task's on-chain status, and the contract settles a task at most
once, so a provider killed between sending a transaction and journaling it never double-charges.
Storage is a constructor-injected :class:`BlobStore`.
"""

from __future__ import annotations

import io
import logging
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import coincurve
from eth_account.signers.local import LocalAccount

from zgos.compute.finetune.contracts import FineTuningMarket, OnchainStatus, OnchainTask
from zgos.compute.finetune.journal import Journal
from zgos.compute.spec.dataset import (
    DatasetQuota,
    parse_dataset,
    validate_dataset_size,
    validate_token_count,
)
from zgos.compute.spec.sealing import (
    AES_KEY_BYTES,
    ECIES_NONCE_BYTES,
    GCM_IV_BYTES,
    encrypt_deliverable,
    seal_key,
)
from zgos.compute.spec.tasks import (
    TaskEvent,
    TaskState,
    TrainingParams,
    compute_key_commitment,
    compute_training_fee,
    is_committed_key,
    recover_task_signer,
)
from zgos.core.errors import ZgError

if TYPE_CHECKING:  # the training stack (torch, transformers) loads with the first task only
    from transformers import PreTrainedModel

    from zgos.compute.finetune.train import Tokenizer, TrainingProgress

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
WORKING_STATES = frozenset({TaskState.SETTING_UP, TaskState.TRAINING, TaskState.DELIVERING})  # retried from start
DEFAULT_POLL_S = 1.0
DATASET_FILENAME = "dataset.bin"
ADAPTER_DIRNAME = "adapter"
GGUF_LORA_FILENAME = "adapter.gguf"
LAST_BLOCK_KEY = "last_scanned_block"
PROGRESS_WRITE_INTERVAL_S = 0.5


class BlobStore(Protocol):
    """Content-addressed storage: the storage network's client in production."""

    def upload(self, data: bytes) -> bytes:
        """Store ``data``; return its 32-byte root. Uploading the same bytes again is a no-op."""
        ...

    def download(self, root: bytes) -> bytes:
        """The bytes whose root is ``root``, verified against it; raise ``ZgError`` otherwise."""
        ...

    def size(self, root: bytes) -> int | None:
        """The byte size recorded for ``root`` where it was stored (the chain for the storage
        network), without fetching it; None if it was never stored."""
        ...


class BaseModel(Protocol):
    """A base model this provider fine-tunes, identified on-chain by ``model_hash``."""

    model_hash: bytes
    base_gguf: Path | None  # the GGUF llama.cpp serves; None skips the GGUF LoRA conversion

    def load_tokenizer(self) -> Tokenizer: ...

    def load_model(self) -> PreTrainedModel:
        """A fresh copy of the base weights (LoRA is attached to it per task)."""
        ...


class TaskRejected(ZgError):
    """The task's inputs are unacceptable; the provider refunds it on-chain."""


@dataclass
class WorkerConfig:
    work_dir: Path
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    poll_s: float = DEFAULT_POLL_S
    from_block: int = 0


def pack_deliverable(adapter_dir: Path) -> bytes:
    """A deterministic tar of the adapter directory (sorted names, zero times and owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in adapter_dir.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(adapter_dir).as_posix())
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_deliverable(package: bytes, out_dir: Path) -> list[str]:
    """Extract a packed deliverable into ``out_dir`` (no links, no paths outside it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(package), mode="r") as tar:
        tar.extractall(out_dir, filter="data")
        return sorted(tar.getnames())


@dataclass
class FineTuningWorker:
    """One provider's worker. Construct, then call :meth:`run` (or :meth:`run_once`)."""

    market: FineTuningMarket
    provider: LocalAccount
    journal: Journal
    store: BlobStore
    base_models: dict[bytes, BaseModel]
    config: WorkerConfig
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    on_progress: Callable[[int, TrainingProgress], None] | None = None
    _tokenizers: dict[bytes, Tokenizer] = field(default_factory=dict)

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.run_once():
                stop.wait(self.config.poll_s)

    def run_once(self) -> bool:
        """Discover new tasks and advance every open one by one step; True if any moved."""
        self.sync_tasks()
        moved = False
        open_states = set(TaskState) - {TaskState.FINISHED, TaskState.FAILED}
        for task_id in self.journal.task_ids(open_states):
            before = self.journal.get(task_id).state
            try:
                after = self.step(task_id)
            except ZgError as exc:  # chain or storage hiccup: retried on the next pass
                log.warning("task %d in %s: %s", task_id, before, exc)
                continue
            moved = moved or after != before
        return moved

    def sync_tasks(self) -> list[int]:
        """Journal every new task for this provider; returns the new ids."""
        chain = self.market.chain
        start = max(self.journal.get_meta(LAST_BLOCK_KEY, self.config.from_block - 1) + 1, 0)
        head = chain.block_number()
        if head < start:
            return []
        logs = chain.get_logs(
            self.market.contract, "TaskCreated", start, head, {"provider": self.provider.address}
        )
        new = [
            int(e["args"]["taskId"])
            for e in logs
            if self.journal.add_task(int(e["args"]["taskId"]))
        ]
        self.journal.set_meta(LAST_BLOCK_KEY, head)
        return new

    # --- one step ----------------------------------------------------------------------

    def step(self, task_id: int) -> TaskState:
        """Advance ``task_id`` by one state (or not, if it waits for the chain): what the chain
        decided first (settled, cancelled), then the attempt limit, then the state's own work."""
        state = self.journal.get(task_id).state
        onchain = self.market.get_task(task_id)
        if onchain.status == OnchainStatus.SETTLED and state in (TaskState.DELIVERED, TaskState.ACKNOWLEDGED):
            return self.journal.apply(task_id, TaskEvent.SETTLED)
        if onchain.status == OnchainStatus.CANCELLED and (state == TaskState.INIT or state in WORKING_STATES):
            return self.journal.apply(task_id, TaskEvent.FAIL, "cancelled on-chain")
        if state == TaskState.INIT:
            return self.journal.apply(task_id, TaskEvent.START_SETUP)
        if state in WORKING_STATES:
            attempts = self.journal.count_attempt(task_id)
            if attempts > self.config.max_attempts:
                return self._fail(task_id, onchain, f"{state} failed {attempts - 1} times")
            return self._work(task_id, state, onchain)
        if state == TaskState.DELIVERED:
            return self._await_acknowledgement(task_id, onchain)
        if state == TaskState.ACKNOWLEDGED:
            self.market.settle(self.provider, task_id, self._sealed_key(task_id, onchain))
            return self.journal.apply(task_id, TaskEvent.SETTLED)
        return state

    def _work(self, task_id: int, state: TaskState, onchain: OnchainTask) -> TaskState:
        """Set up, train or deliver, then journal the next state (a rejected set-up: Failed)."""
        if state == TaskState.SETTING_UP:
            try:
                self._set_up(task_id, onchain)
            except TaskRejected as exc:
                return self._fail(task_id, onchain, str(exc))
            return self.journal.apply(task_id, TaskEvent.START_TRAINING)
        if state == TaskState.TRAINING:
            self._train(task_id, onchain)
            return self.journal.apply(task_id, TaskEvent.START_DELIVERY)
        self._deliver(task_id, onchain)
        return self.journal.apply(task_id, TaskEvent.DELIVERED)

    def _await_acknowledgement(self, task_id: int, onchain: OnchainTask) -> TaskState:
        """Delivered: acknowledged by the user, or settled with the penalty once it timed out."""
        if onchain.status == OnchainStatus.ACKNOWLEDGED:
            return self.journal.apply(task_id, TaskEvent.ACKNOWLEDGED)
        if self._chain_time() >= onchain.delivered_at + self.market.ack_timeout_s():
            self.market.settle(self.provider, task_id, b"")
            return self.journal.apply(task_id, TaskEvent.SETTLED)
        return TaskState.DELIVERED

    def _fail(self, task_id: int, onchain: OnchainTask, reason: str) -> TaskState:
        """Refund on-chain (if the escrow is still there), then journal Failed."""
        if onchain.status in (OnchainStatus.CREATED, OnchainStatus.STARTED):
            self.market.reject_task(self.provider, task_id, reason[:200])
        log.info("task %d failed: %s", task_id, reason)
        return self.journal.apply(task_id, TaskEvent.FAIL, reason)

    # --- the work of each state ----------------------------------------------------------

    def _task_dir(self, task_id: int) -> Path:
        path = self.config.work_dir / f"task-{task_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _tokenizer(self, base: BaseModel) -> Tokenizer:
        if base.model_hash not in self._tokenizers:
            self._tokenizers[base.model_hash] = base.load_tokenizer()
        return self._tokenizers[base.model_hash]

    def _params(self, task_id: int) -> tuple[TrainingParams, dict[str, Any]]:
        event = self.market.task_created_event(task_id, self.config.from_block)
        return TrainingParams.decode(bytes(event["params"])), event

    def _set_up(self, task_id: int, onchain: OnchainTask) -> None:
        """Check the task and fetch its dataset (``TaskRejected``: refund it), then start it."""
        params, public_key, base = self._check_request(task_id, onchain)
        service = self.market.get_service(self.provider.address)
        quota = DatasetQuota(max_bytes=service.max_dataset_bytes, max_tokens=service.max_tokens)
        data, tokens = self._fetch_dataset(onchain, base, quota)
        price = compute_training_fee(tokens, params.epochs, service.price_per_token)
        if onchain.fee < price:
            raise TaskRejected(f"fee {onchain.fee} is below the price {price} for {tokens} tokens")
        (self._task_dir(task_id) / DATASET_FILENAME).write_bytes(data)
        self.journal.set_fields(task_id, user_public_key=public_key, tokens=tokens)
        if onchain.status == OnchainStatus.CREATED:
            self.market.start_task(self.provider, task_id)

    def _check_request(self, task_id: int, onchain: OnchainTask) -> tuple[TrainingParams, bytes, BaseModel]:
        """The task's signed parameters, the user's public key recovered from its signature,
        and the base model it names (one this provider offers)."""
        try:
            params, event = self._params(task_id)
            request = self.market.task_request(onchain.user, onchain.provider, onchain.base_model,
                                               onchain.dataset_root, bytes(event["params"]), onchain.fee,
                                               onchain.nonce)
            public_key = recover_task_signer(self.market.domain, request, bytes(event["signature"]))
        except ZgError as exc:
            raise TaskRejected(str(exc)) from None
        base = self.base_models.get(onchain.base_model)
        if base is None:
            raise TaskRejected(f"base model 0x{onchain.base_model.hex()} is not offered")
        return params, public_key, base

    def _fetch_dataset(self, onchain: OnchainTask, base: BaseModel, quota: DatasetQuota) -> tuple[bytes, int]:
        """The dataset and its token count, its size checked from the chain before a byte of it
        is fetched (a storage hiccup raises ``ZgError``: retried)."""
        size = self.store.size(onchain.dataset_root)
        if size is None:
            raise TaskRejected(f"the dataset 0x{onchain.dataset_root.hex()} was never stored")
        try:
            validate_dataset_size(size, quota)
        except ZgError as exc:
            raise TaskRejected(f"bad dataset: {exc}") from None
        data = self.store.download(onchain.dataset_root)
        from zgos.compute.finetune.train import count_tokens

        try:
            examples = parse_dataset(data, quota)
            tokens = count_tokens(self._tokenizer(base), examples)
            validate_token_count(tokens, quota)
        except ZgError as exc:
            raise TaskRejected(f"bad dataset: {exc}") from None
        return data, tokens

    def _train(self, task_id: int, onchain: OnchainTask) -> None:
        from zgos.compute.finetune.gguf_lora import convert_adapter_to_gguf
        from zgos.compute.finetune.train import train_lora

        params, _ = self._params(task_id)
        base = self.base_models[onchain.base_model]
        task_dir = self._task_dir(task_id)
        examples = parse_dataset((task_dir / DATASET_FILENAME).read_bytes(), None)

        last_write = 0.0

        def progress(p: TrainingProgress) -> None:
            nonlocal last_write
            now = time.monotonic()  # progress is advisory: a durable write at most every 0.5 s
            if now - last_write >= PROGRESS_WRITE_INTERVAL_S or p.step == p.total_steps:
                self.journal.set_fields(
                    task_id, step=p.step, total_steps=p.total_steps, loss=p.loss
                )
                last_write = now
            if self.on_progress is not None:
                self.on_progress(task_id, p)

        adapter_dir = task_dir / ADAPTER_DIRNAME
        train_lora(
            base.load_model(), self._tokenizer(base), examples, params, adapter_dir, progress
        )
        if base.base_gguf is not None:
            convert_adapter_to_gguf(
                adapter_dir, adapter_dir / GGUF_LORA_FILENAME, base_gguf=base.base_gguf
            )

    def _deliver(self, task_id: int, onchain: OnchainTask) -> None:
        record = self.journal.get(task_id)
        key, iv = record.aes_key, record.aes_iv
        if key is None or iv is None:  # journaled before first use: a retry reuses them
            key, iv = self.random_bytes(AES_KEY_BYTES), self.random_bytes(GCM_IV_BYTES)
            self.journal.set_fields(task_id, aes_key=key, aes_iv=iv)
        package = pack_deliverable(self._task_dir(task_id) / ADAPTER_DIRNAME)
        root = self.store.upload(encrypt_deliverable(package, key, iv))
        sealed = record.sealed_key
        if sealed is None:  # journaled before it is committed to: a retry commits the same key
            sealed = self._seal_key(task_id)
            self.journal.set_fields(task_id, sealed_key=sealed)
        self.journal.set_fields(task_id, result_root=root)
        if onchain.status == OnchainStatus.STARTED:
            self.market.add_deliverable(self.provider, task_id, root, compute_key_commitment(sealed))

    def _sealed_key(self, task_id: int, onchain: OnchainTask) -> bytes:
        """The sealed key committed to at delivery (the only one settlement accepts)."""
        sealed = self.journal.get(task_id).sealed_key
        if sealed is None or not is_committed_key(onchain.key_commitment, sealed):
            raise ZgError(f"task {task_id}: the journal has no sealed key matching the on-chain commitment")
        return sealed

    def _seal_key(self, task_id: int) -> bytes:
        """The task's AES key sealed (ECIES) to the user's public key, with fresh randomness."""
        record = self.journal.get(task_id)
        if record.aes_key is None or record.user_public_key is None:
            raise ZgError(f"task {task_id} has no key to release")
        while True:
            ephemeral = self.random_bytes(32)
            try:
                coincurve.PrivateKey(ephemeral)
                break
            except ValueError:  # not a valid scalar (probability ~2^-128)
                continue
        return seal_key(
            record.aes_key, record.user_public_key, ephemeral, self.random_bytes(ECIES_NONCE_BYTES)
        )

    def _chain_time(self) -> int:
        return int(self.market.chain.w3.eth.get_block("latest")["timestamp"])
