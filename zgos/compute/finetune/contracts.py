"""Typed access to the ``FineTuningServing`` and ``ModelRegistry`` contracts.

One object per contract over a :class:`zgos.chain.client.Chain`; the provider pipeline, the
user's CLI and the provenance walk all go through these methods, never through raw ABI calls.
Task messages are signed here with :mod:`zgos.compute.spec.tasks` (EIP-712), so the bytes
the contract verifies are the bytes the pure core defines. ``DEPLOY_PLAN`` deploys both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import ContractPlan
from zgos.chain.registry import register_or_update
from zgos.compute.spec.tasks import (
    ACK_TIMEOUT_S,
    DELIVERY_TIMEOUT_S,
    PENALTY_PERCENT,
    TaskDomain,
    TaskRequest,
    compute_params_hash,
    sign_task,
)
from zgos.core.errors import TxReverted

FINE_TUNING_CONTRACT = "FineTuningServing"
PROVIDERS_PAGE = 100  # FineTuningServing.MAX_PAGE
MAX_PROVIDERS_READ = 10_000
MODEL_REGISTRY_CONTRACT = "ModelRegistry"
ZERO_HASH = b"\x00" * 32

DEPLOY_PLAN: list[ContractPlan] = [  # fine-tuning's part (zgos.devnet.plan)
    ContractPlan(FINE_TUNING_CONTRACT, args=lambda _: [ACK_TIMEOUT_S, DELIVERY_TIMEOUT_S, PENALTY_PERCENT]),
    # a base model is registered only by the uploader of its file: the first submitter in the Flow
    ContractPlan(
        MODEL_REGISTRY_CONTRACT,
        depends=(FINE_TUNING_CONTRACT, "Flow"),
        args=lambda addrs: [addrs[FINE_TUNING_CONTRACT], addrs["Flow"]],
    ),
]


class OnchainStatus(IntEnum):
    NONE = 0
    CREATED = 1
    STARTED = 2
    DELIVERED = 3
    ACKNOWLEDGED = 4
    SETTLED = 5
    CANCELLED = 6


@dataclass(frozen=True)
class Service:
    provider: str
    url: str
    price_per_token: int
    max_dataset_bytes: int
    max_tokens: int
    models: tuple[bytes, ...]
    updated_at: int

    @property
    def terms(self) -> ServiceTerms:
        return ServiceTerms(self.url, self.price_per_token, self.max_dataset_bytes, self.max_tokens, self.models)


@dataclass(frozen=True)
class ServiceTerms:
    """What a fine-tuning provider offers: what it registers and compares at start."""

    url: str
    price_per_token: int
    max_dataset_bytes: int
    max_tokens: int
    models: tuple[bytes, ...]


@dataclass(frozen=True)
class OnchainTask:
    task_id: int
    user: str
    provider: str
    base_model: bytes
    dataset_root: bytes
    params_hash: bytes
    fee: int
    nonce: int
    created_at: int
    delivered_at: int
    acknowledged_at: int
    status: OnchainStatus
    result_root: bytes
    key_commitment: bytes  # keccak256 of the sealed key the provider will release (0 until delivered)
    sealed_key: bytes


@dataclass(frozen=True)
class ModelNode:
    id: bytes
    parent: bytes
    datasets: tuple[bytes, ...]
    task_id: int
    deliverable_root: bytes
    trainer: str
    owner: str
    name: str
    licence: str
    registered_at: int


def _address_bytes(address: str) -> bytes:
    return bytes.fromhex(to_checksum_address(address)[2:])


class FineTuningMarket:
    """The ``FineTuningServing`` contract at ``address``."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract(FINE_TUNING_CONTRACT, address)
        self.domain = TaskDomain(chain.chain_id, _address_bytes(self.address))

    # --- services ----------------------------------------------------------------------

    def add_or_update_service(
        self,
        provider: LocalAccount,
        url: str,
        price_per_token: int,
        max_dataset_bytes: int,
        max_tokens: int,
        models: list[bytes],
    ) -> Receipt:
        fn = self.contract.functions.addOrUpdateService(
            url, price_per_token, max_dataset_bytes, max_tokens, models
        )
        return self.chain.transact(provider, fn)

    def registered_terms(self, provider: str) -> ServiceTerms | None:
        try:
            return self.get_service(provider).terms
        except TxReverted:  # NoService
            return None

    def ensure_service(self, provider: LocalAccount, terms: ServiceTerms) -> bool:
        """Add ``provider``'s service on ``terms``, or update it if it says anything else;
        returns whether a transaction was sent."""
        return register_or_update(
            lambda: self.registered_terms(provider.address), terms,
            lambda t: self.add_or_update_service(provider, t.url, t.price_per_token, t.max_dataset_bytes,
                                                 t.max_tokens, list(t.models)))

    def get_service(self, provider: str) -> Service:
        raw = self.chain.call(self.contract.functions.getService(to_checksum_address(provider)))
        return Service(
            to_checksum_address(provider),
            raw[0],
            raw[1],
            raw[2],
            raw[3],
            tuple(bytes(m) for m in raw[4]),
            raw[5],
        )

    def providers(self, limit: int = MAX_PROVIDERS_READ) -> list[str]:
        """Registered providers, read page by page (anyone can register: at most ``limit``)."""
        found: list[str] = []
        while len(found) < limit:
            page, total = self.chain.call(self.contract.functions.providersPage(len(found), PROVIDERS_PAGE))
            found += [str(p) for p in page][: limit - len(found)]
            if not page or len(found) >= total:
                break
        return found

    # --- tasks -------------------------------------------------------------------------

    def task_request(
        self,
        user: str,
        provider: str,
        base_model: bytes,
        dataset_root: bytes,
        params: bytes,
        fee: int,
        nonce: int,
    ) -> TaskRequest:
        return TaskRequest(
            user=_address_bytes(user),
            provider=_address_bytes(provider),
            base_model=base_model,
            dataset_root=dataset_root,
            params_hash=compute_params_hash(params),
            fee=fee,
            nonce=nonce,
        )

    def create_task(
        self,
        user: LocalAccount,
        provider: str,
        base_model: bytes,
        dataset_root: bytes,
        params: bytes,
        fee: int,
        nonce: int,
        signature: bytes | None = None,
    ) -> int:
        """Sign (unless ``signature`` is given) and create a task escrowing ``fee``; its id."""
        if signature is None:
            request = self.task_request(
                user.address, provider, base_model, dataset_root, params, fee, nonce
            )
            signature = sign_task(self.domain, request, bytes(user.key))
        fn = self.contract.functions.createTask(
            to_checksum_address(provider), base_model, dataset_root, params, nonce, signature
        )
        receipt = self.chain.transact(user, fn, value=fee)
        return int(receipt.events(self.contract, "TaskCreated")[0]["args"]["taskId"])

    def task_created_event(self, task_id: int, from_block: int = 0) -> dict[str, Any]:
        """The ``TaskCreated`` arguments (params bytes and signature included)."""
        logs = self.chain.get_logs(
            self.contract, "TaskCreated", from_block, self.chain.block_number(), {"taskId": task_id}
        )
        if not logs:
            raise LookupError(f"no TaskCreated event for task {task_id}")
        return dict(logs[0]["args"])

    def get_task(self, task_id: int) -> OnchainTask:
        raw = self.chain.call(self.contract.functions.getTask(task_id))
        return OnchainTask(
            task_id,
            raw[0],
            raw[1],
            bytes(raw[2]),
            bytes(raw[3]),
            bytes(raw[4]),
            raw[5],
            raw[6],
            raw[7],
            raw[8],
            raw[9],
            OnchainStatus(raw[10]),
            bytes(raw[11]),
            bytes(raw[12]),
            bytes(raw[13]),
        )

    def start_task(self, provider: LocalAccount, task_id: int) -> Receipt:
        return self.chain.transact(provider, self.contract.functions.startTask(task_id))

    def reject_task(self, provider: LocalAccount, task_id: int, reason: str) -> Receipt:
        return self.chain.transact(provider, self.contract.functions.rejectTask(task_id, reason))

    def cancel_task(self, user: LocalAccount, task_id: int) -> Receipt:
        return self.chain.transact(user, self.contract.functions.cancelTask(task_id))

    def reclaim_task(self, user: LocalAccount, task_id: int) -> Receipt:
        return self.chain.transact(user, self.contract.functions.reclaimTask(task_id))

    def add_deliverable(self, provider: LocalAccount, task_id: int, result_root: bytes,
                        key_commitment: bytes) -> Receipt:
        """Record the deliverable's root and commit to the sealed key settlement will release."""
        fn = self.contract.functions.addDeliverable(task_id, result_root, key_commitment)
        return self.chain.transact(provider, fn)

    def acknowledge(self, user: LocalAccount, task_id: int, result_root: bytes) -> Receipt:
        fn = self.contract.functions.acknowledgeDeliverable(task_id, result_root)
        return self.chain.transact(user, fn)

    def settle(self, provider: LocalAccount, task_id: int, sealed_key: bytes) -> Receipt:
        fn = self.contract.functions.settleFees(task_id, sealed_key)
        return self.chain.transact(provider, fn)

    def ack_timeout_s(self) -> int:
        return int(self.chain.call(self.contract.functions.ackTimeout()))

    def delivery_timeout_s(self) -> int:
        return int(self.chain.call(self.contract.functions.deliveryTimeout()))

    def penalty_percent(self) -> int:
        return int(self.chain.call(self.contract.functions.penaltyPercent()))


class ModelRegistry:
    """The ``ModelRegistry`` contract at ``address``."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract(MODEL_REGISTRY_CONTRACT, address)

    def register_base_model(
        self, publisher: LocalAccount, model_id: bytes, name: str, licence: str
    ) -> Receipt:
        fn = self.contract.functions.registerBaseModel(model_id, name, licence)
        return self.chain.transact(publisher, fn)

    def register_fine_tuned_model(
        self, user: LocalAccount, task_id: int, name: str, licence: str
    ) -> bytes:
        """Register the model of a settled task; its id, which the registry derives from the task."""
        fn = self.contract.functions.registerFineTunedModel(task_id, name, licence)
        receipt = self.chain.transact(user, fn)
        return bytes(receipt.events(self.contract, "ModelRegistered")[0]["args"]["id"])

    def tuned_model_id(self, task_id: int) -> bytes:
        """The id the registry gives the model of a delivered task."""
        return bytes(self.chain.call(self.contract.functions.tunedModelId(task_id)))

    def is_registered(self, model_id: bytes) -> bool:
        return bool(self.chain.call(self.contract.functions.isRegistered(model_id)))

    def get_model(self, model_id: bytes) -> ModelNode:
        return _model_node(self.chain.call(self.contract.functions.getModel(model_id)))

    def lineage(self, model_id: bytes) -> list[ModelNode]:
        """``model_id`` and its ancestors, newest first (one chain call)."""
        return [
            _model_node(raw) for raw in self.chain.call(self.contract.functions.lineage(model_id))
        ]

    def transfer_ownership(self, owner: LocalAccount, model_id: bytes, to: str) -> Receipt:
        fn = self.contract.functions.transferOwnership(model_id, to_checksum_address(to))
        return self.chain.transact(owner, fn)


def _model_node(raw: Any) -> ModelNode:
    return ModelNode(
        bytes(raw[0]),
        bytes(raw[1]),
        tuple(bytes(d) for d in raw[2]),
        raw[3],
        bytes(raw[4]),
        raw[5],
        raw[6],
        raw[7],
        raw[8],
        raw[9],
    )
