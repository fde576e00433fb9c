"""Fine-tuning tasks: training parameters, fees, the user-signed task message and the task
state machine.

A task is created by the user: it names the provider, the base model (its content hash), the
dataset (its storage root), the training parameters and the fee, and the user signs all of it
with EIP-712 so the provider and the ``FineTuningServing`` contract check the same bytes.
0G signs only ``keccak(user ‖ nonce ‖ datasetRootString ‖ fee)`` with EIP-191 and leaves the
base model and parameters unsigned (reference/compute.md §5.2 step 5, §12); zgos signs them.

The fee is ``price_per_token × tokens × epochs`` (compute.md §5.2 step 4). The provider's task
pipeline is the state machine of compute.md §5.2 step 7, simplified to
Init → SettingUp → Training → Delivering → Delivered → Acknowledged → Finished | Failed; the
transitions here are pure rules and the provider's journal only ever applies them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

import coincurve

from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256

ADDRESS_BYTES = 20
HASH_BYTES = 32
SIGNATURE_BYTES = 65
UINT256_MAX = 2**256 - 1

MIN_EPOCHS = 1
MAX_EPOCHS = 20
MIN_LORA_RANK = 1
MAX_LORA_RANK = 64
MIN_SEQ_TOKENS = 8
MAX_SEQ_TOKENS = 2048
MAX_LEARNING_RATE = 1.0
PERCENT = 100

# Devnet deployment of FineTuningServing (0G: ack timeout 6 h, capped at lockTime/2; §5.1).
ACK_TIMEOUT_S = 6 * 3600
DELIVERY_TIMEOUT_S = 24 * 3600
PENALTY_PERCENT = 30

EIP712_DOMAIN_NAME = "zgos FineTuningServing"
EIP712_DOMAIN_VERSION = "1"
EIP712_DOMAIN_TYPE = (
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TASK_TYPE = (
    b"Task(address user,address provider,bytes32 baseModel,bytes32 datasetRoot,"
    b"bytes32 paramsHash,uint256 fee,uint256 nonce)"
)


class InvalidTask(ZgError):
    """A task message, its parameters or its signature is malformed or does not verify."""


class InvalidTransition(ZgError):
    """A task event that the task's current state does not allow."""


# --- training parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingParams:
    """LoRA hyper-parameters of one task; their exact encoded bytes are signed by the user."""

    epochs: int = 3
    learning_rate: float = 5e-4
    lora_rank: int = 8
    lora_alpha: int = 16
    max_seq_tokens: int = 256
    seed: int = 0

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): what ``params_hash`` commits to."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> TrainingParams:
        """Parse and validate encoded parameters; raise :class:`InvalidTask` if malformed."""
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidTask("training parameters are not valid JSON") from None
        if not isinstance(obj, dict):
            raise InvalidTask("training parameters must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(obj) - known
        if unknown:
            raise InvalidTask(f"unknown training parameters {sorted(unknown)}")
        try:
            params = cls(**obj)
        except TypeError as exc:
            raise InvalidTask(f"bad training parameters: {exc}") from None
        validate_training_params(params)
        return params


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_training_params(params: TrainingParams) -> None:
    """Raise :class:`InvalidTask` unless every parameter is in its allowed range."""
    for name in ("epochs", "lora_rank", "lora_alpha", "max_seq_tokens", "seed"):
        if not _is_int(getattr(params, name)):
            raise InvalidTask(f"training parameter {name} must be an integer")
    if not MIN_EPOCHS <= params.epochs <= MAX_EPOCHS:
        raise InvalidTask(f"epochs must be in [{MIN_EPOCHS}, {MAX_EPOCHS}]")
    if not MIN_LORA_RANK <= params.lora_rank <= MAX_LORA_RANK:
        raise InvalidTask(f"lora_rank must be in [{MIN_LORA_RANK}, {MAX_LORA_RANK}]")
    if params.lora_alpha < 1:
        raise InvalidTask("lora_alpha must be positive")
    if not MIN_SEQ_TOKENS <= params.max_seq_tokens <= MAX_SEQ_TOKENS:
        raise InvalidTask(f"max_seq_tokens must be in [{MIN_SEQ_TOKENS}, {MAX_SEQ_TOKENS}]")
    if not 0 <= params.seed <= UINT256_MAX:
        raise InvalidTask("seed must be a non-negative integer")
    lr = params.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= MAX_LEARNING_RATE:
        raise InvalidTask(f"learning_rate must be a number in (0, {MAX_LEARNING_RATE}]")


def compute_params_hash(encoded_params: bytes) -> bytes:
    """``keccak256`` of the exact parameter bytes the user signed."""
    return keccak256(encoded_params)


# --- fees ----------------------------------------------------------------------------------


def compute_training_fee(tokens: int, epochs: int, price_per_token: int) -> int:
    """Fee in neuron = ``price_per_token × tokens × epochs`` (compute.md §5.2 step 4)."""
    if tokens < 0 or epochs < 0 or price_per_token < 0:
        raise InvalidTask("tokens, epochs and price must be non-negative")
    return price_per_token * tokens * epochs


def compute_settlement(fee: int, acknowledged: bool, penalty_percent: int) -> tuple[int, int]:
    """Split an escrowed ``fee`` into ``(to_provider, refund_to_user)``.

    Acknowledged: the provider gets the whole fee. Never acknowledged within the timeout: the
    provider gets ``penalty_percent``% (for work the user did not confirm) and the user the
    rest. The two parts always add up to the fee, so nobody is paid more than the escrow.
    """
    if fee < 0 or not 0 <= penalty_percent <= PERCENT:
        raise InvalidTask("fee must be non-negative and penalty_percent in [0, 100]")
    if acknowledged:
        return fee, 0
    provider_share = fee * penalty_percent // PERCENT
    return provider_share, fee - provider_share


# --- the signed task message ---------------------------------------------------------------


@dataclass(frozen=True)
class TaskDomain:
    """The EIP-712 domain: which chain and which FineTuningServing contract."""

    chain_id: int
    verifying_contract: bytes

    def separator(self) -> bytes:
        """``hashStruct(EIP712Domain)``."""
        _check_len(self.verifying_contract, ADDRESS_BYTES, "verifying contract")
        return keccak256(
            keccak256(EIP712_DOMAIN_TYPE)
            + keccak256(EIP712_DOMAIN_NAME.encode())
            + keccak256(EIP712_DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(32, "big")
            + self.verifying_contract.rjust(32, b"\x00")
        )


@dataclass(frozen=True)
class TaskRequest:
    """What the user signs to order a fine-tune (all hashes and addresses as raw bytes)."""

    user: bytes
    provider: bytes
    base_model: bytes
    dataset_root: bytes
    params_hash: bytes
    fee: int
    nonce: int

    def struct_hash(self) -> bytes:
        """``hashStruct(Task)``; raise :class:`InvalidTask` on a field of the wrong size."""
        _check_len(self.user, ADDRESS_BYTES, "user")
        _check_len(self.provider, ADDRESS_BYTES, "provider")
        _check_len(self.base_model, HASH_BYTES, "base model hash")
        _check_len(self.dataset_root, HASH_BYTES, "dataset root")
        _check_len(self.params_hash, HASH_BYTES, "params hash")
        for name, value in (("fee", self.fee), ("nonce", self.nonce)):
            if not 0 <= value <= UINT256_MAX:
                raise InvalidTask(f"{name} is not a uint256")
        return keccak256(
            keccak256(TASK_TYPE)
            + self.user.rjust(32, b"\x00")
            + self.provider.rjust(32, b"\x00")
            + self.base_model
            + self.dataset_root
            + self.params_hash
            + self.fee.to_bytes(32, "big")
            + self.nonce.to_bytes(32, "big")
        )


def _check_len(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise InvalidTask(f"{name} must be {size} bytes, got {len(value)}")


def compute_task_digest(domain: TaskDomain, task: TaskRequest) -> bytes:
    """The EIP-712 digest ``keccak(0x1901 ‖ domainSeparator ‖ hashStruct(task))``."""
    return keccak256(b"\x19\x01" + domain.separator() + task.struct_hash())


def compute_address(public_key: coincurve.PublicKey) -> bytes:
    """The Ethereum address of a secp256k1 public key: last 20 bytes of keccak(x ‖ y)."""
    return keccak256(public_key.format(compressed=False)[1:])[-ADDRESS_BYTES:]


def sign_task(domain: TaskDomain, task: TaskRequest, private_key: bytes) -> bytes:
    """Sign ``task`` as Ethereum wallets do: ``r ‖ s ‖ v`` with ``v`` in {27, 28}."""
    signature = coincurve.PrivateKey(private_key).sign_recoverable(
        compute_task_digest(domain, task), hasher=None
    )
    return signature[:64] + bytes([signature[64] + 27])


def recover_task_signer(domain: TaskDomain, task: TaskRequest, signature: bytes) -> bytes:
    """The public key (65 bytes, uncompressed) that signed ``task``.

    Raises :class:`InvalidTask` if the signature is malformed or was not made by ``task.user``.
    The key is kept: it is what the deliverable's AES key is sealed to (compute.md §5.2 step 7).
    """
    _check_len(signature, SIGNATURE_BYTES, "signature")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidTask("signature v must be 27 or 28")
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), compute_task_digest(domain, task), hasher=None
        )
    except ValueError:
        raise InvalidTask("the task signature does not verify") from None
    if compute_address(public_key) != task.user:
        raise InvalidTask("the task is not signed by its user")
    return public_key.format(compressed=False)


# --- the task state machine ----------------------------------------------------------------


class TaskState(StrEnum):
    INIT = "Init"
    SETTING_UP = "SettingUp"
    TRAINING = "Training"
    DELIVERING = "Delivering"
    DELIVERED = "Delivered"
    ACKNOWLEDGED = "Acknowledged"
    FINISHED = "Finished"
    FAILED = "Failed"


class TaskEvent(StrEnum):
    START_SETUP = "start_setup"  # provider accepted the task; downloads and verifies inputs
    START_TRAINING = "start_training"  # inputs verified, price checked
    START_DELIVERY = "start_delivery"  # adapter trained; encrypt + upload begins
    DELIVERED = "delivered"  # result root recorded on-chain
    ACKNOWLEDGED = "acknowledged"  # the user acknowledged the deliverable on-chain
    SETTLED = "settled"  # fee settled on-chain (full, or penalty after the timeout)
    FAIL = "fail"  # an unrecoverable error, or the user cancelled before the start


TERMINAL_STATES = frozenset({TaskState.FINISHED, TaskState.FAILED})

TRANSITIONS: dict[tuple[TaskState, TaskEvent], TaskState] = {
    (TaskState.INIT, TaskEvent.START_SETUP): TaskState.SETTING_UP,
    (TaskState.SETTING_UP, TaskEvent.START_TRAINING): TaskState.TRAINING,
    (TaskState.TRAINING, TaskEvent.START_DELIVERY): TaskState.DELIVERING,
    (TaskState.DELIVERING, TaskEvent.DELIVERED): TaskState.DELIVERED,
    (TaskState.DELIVERED, TaskEvent.ACKNOWLEDGED): TaskState.ACKNOWLEDGED,
    (TaskState.ACKNOWLEDGED, TaskEvent.SETTLED): TaskState.FINISHED,
    # Never acknowledged within the timeout: settled with the penalty split.
    (TaskState.DELIVERED, TaskEvent.SETTLED): TaskState.FINISHED,
    # Before anything is recorded on-chain a task can fail (bad inputs, crashes, cancellation).
    (TaskState.INIT, TaskEvent.FAIL): TaskState.FAILED,
    (TaskState.SETTING_UP, TaskEvent.FAIL): TaskState.FAILED,
    (TaskState.TRAINING, TaskEvent.FAIL): TaskState.FAILED,
    (TaskState.DELIVERING, TaskEvent.FAIL): TaskState.FAILED,
}

# States whose work is repeated from its start after a crash (each step is idempotent);
# every other state waits for the chain and needs no local work to resume.
RESTARTABLE_STATES = frozenset({TaskState.SETTING_UP, TaskState.TRAINING, TaskState.DELIVERING})


def process_task_event(state: TaskState, event: TaskEvent) -> TaskState:
    """Apply ``event`` to ``state``; raise :class:`InvalidTransition` if not allowed.

    Once Delivered the result root is on-chain and the fee is escrowed for the user, so the
    only way out is settlement: a delivered task cannot fail.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"a task in state {state} cannot take event {event}") from None


def is_terminal(state: TaskState) -> bool:
    return state in TERMINAL_STATES


def compute_resume_event(state: TaskState, attempts: int, max_attempts: int) -> TaskEvent | None:
    """After a restart, the event to apply to a task found in ``state`` (None = carry on).

    A restartable state that has already been attempted ``max_attempts`` times fails rather
    than loop forever; anything else resumes where it was.
    """
    if state in RESTARTABLE_STATES and attempts >= max_attempts:
        return TaskEvent.FAIL
    return None


# --- the tuned model's id ------------------------------------------------------------------

TUNED_ID_TAG = b"zgos-ft1"  # the top 8 bytes of every tuned model id (ModelRegistry.TUNED_ID_TAG)
TUNED_ID_DIGEST_BYTES = HASH_BYTES - len(TUNED_ID_TAG)


def compute_tuned_model_id(chain_id: int, fine_tuning: bytes, task_id: int, base_model: bytes,
                           result_root: bytes) -> bytes:
    """The id of the model fine-tuning task ``task_id`` produced, as ``ModelRegistry`` derives it:
    ``TUNED_ID_TAG ‖ keccak256(abi.encode(chainId, fineTuning, taskId, baseModel, resultRoot))[:24]``.

    Everything in it is on chain once the task is delivered, so the registry derives the id
    itself and nobody can claim it first; it binds the base model and the (encrypted) adapter
    delivered under ``result_root``. The tag keeps tuned ids apart from base model ids (storage
    roots): the registry refuses a base model id that carries it. Raises :class:`InvalidTask` on
    a field of the wrong size or a task id that is not a uint256.
    """
    _check_len(fine_tuning, ADDRESS_BYTES, "FineTuningServing address")
    _check_len(base_model, HASH_BYTES, "base model hash")
    _check_len(result_root, HASH_BYTES, "result root")
    for name, value in (("chain id", chain_id), ("task id", task_id)):
        if not 0 <= value <= UINT256_MAX:
            raise InvalidTask(f"{name} is not a uint256")
    digest = keccak256(chain_id.to_bytes(32, "big") + fine_tuning.rjust(32, b"\x00") + task_id.to_bytes(32, "big")
                       + base_model + result_root)
    return TUNED_ID_TAG + digest[:TUNED_ID_DIGEST_BYTES]


def is_tuned_model_id(model_id: bytes) -> bool:
    """Whether ``model_id`` carries the tuned-model tag (a base model id never may)."""
    return len(model_id) == HASH_BYTES and model_id.startswith(TUNED_ID_TAG)


# --- fair exchange of the deliverable key ------------------------------------------------------
#
# The deliverable is an AES-256-GCM ciphertext in storage; its key is sealed (ECIES) to the
# public key the user's task signature reveals. The exchange, and what the chain checks:
#
# 1. Delivery: the provider records the ciphertext's root and ``compute_key_commitment`` of the
#    sealed key it will release (``FineTuningServing.addDeliverable``). The sealed key itself
#    stays private, so the user cannot decrypt before paying.
# 2. Acknowledgement: the user downloads the ciphertext, checks it against the root and
#    acknowledges that root. The key it will get is already fixed by step 1.
# 3. Settlement: the contract pays the provider only against the committed sealed key (any
#    other bytes revert ``KeyMismatch``); unacknowledged after the timeout, the provider gets
#    the penalty share and releases nothing.
#
# Not checkable on chain: that the sealed key opens with the user's private key and that the
# AES key inside decrypts the ciphertext (the EVM has neither AES nor ECIES, and zgos has no
# proof of correct encryption). The user's recourse if it does not: the evidence is public and
# binding — the ciphertext under the acknowledged root, the sealed key on chain, its commitment
# in the provider's own delivery transaction. Revealing the opened AES key (or, if the ECIES
# layer itself fails, the ECDH shared secret) lets anyone re-run the decryption and see it
# fail, which costs the provider its public record. The escrow is not returned by the
# contract: the user's loss is bounded by the task's fee, as 0G's.


def compute_key_commitment(sealed_key: bytes) -> bytes:
    """What the provider commits to at delivery: ``keccak256(sealed_key)``; raises
    :class:`InvalidTask` for an empty key (there is nothing to release)."""
    if not sealed_key:
        raise InvalidTask("the sealed key is empty")
    return keccak256(sealed_key)


def is_committed_key(commitment: bytes, sealed_key: bytes) -> bool:
    """Whether ``sealed_key`` is the one committed at delivery (the settlement's check)."""
    return bool(sealed_key) and keccak256(sealed_key) == commitment
