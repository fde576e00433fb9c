"""Task messages (EIP-712), parameters, fees and the task state machine."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec.tasks import (
    EIP712_DOMAIN_NAME,
    EIP712_DOMAIN_VERSION,
    MAX_EPOCHS,
    TERMINAL_STATES,
    TRANSITIONS,
    InvalidTask,
    InvalidTransition,
    TaskDomain,
    TaskEvent,
    TaskRequest,
    TaskState,
    TrainingParams,
    compute_address,
    compute_params_hash,
    compute_resume_event,
    compute_settlement,
    compute_task_digest,
    compute_training_fee,
    process_task_event,
    recover_task_signer,
    sign_task,
)

USER = Account.from_key(b"\x11" * 32)
OTHER = Account.from_key(b"\x22" * 32)
DOMAIN = TaskDomain(chain_id=31337, verifying_contract=b"\xab" * 20)

hashes = st.binary(min_size=32, max_size=32)
uints = st.integers(min_value=0, max_value=2**256 - 1)


def _task(user: bytes, **overrides: object) -> TaskRequest:
    fields: dict[str, object] = {
        "user": user,
        "provider": b"\x05" * 20,
        "base_model": b"\x01" * 32,
        "dataset_root": b"\x02" * 32,
        "params_hash": compute_params_hash(TrainingParams().encode()),
        "fee": 10**15,
        "nonce": 1,
    }
    fields.update(overrides)
    return TaskRequest(**fields)  # type: ignore[arg-type]


@given(
    base_model=hashes,
    dataset_root=hashes,
    params_hash=hashes,
    fee=uints,
    nonce=uints,
    chain_id=st.integers(min_value=1, max_value=2**64),
)
def test_task_digest_is_the_eip712_digest_wallets_sign(
    base_model: bytes,
    dataset_root: bytes,
    params_hash: bytes,
    fee: int,
    nonce: int,
    chain_id: int,
) -> None:
    domain = TaskDomain(chain_id=chain_id, verifying_contract=b"\xab" * 20)
    task = _task(
        bytes.fromhex(USER.address[2:]),
        base_model=base_model,
        dataset_root=dataset_root,
        params_hash=params_hash,
        fee=fee,
        nonce=nonce,
    )
    typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Task": [
                    {"name": "user", "type": "address"},
                    {"name": "provider", "type": "address"},
                    {"name": "baseModel", "type": "bytes32"},
                    {"name": "datasetRoot", "type": "bytes32"},
                    {"name": "paramsHash", "type": "bytes32"},
                    {"name": "fee", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                ],
            },
            "primaryType": "Task",
            "domain": {
                "name": EIP712_DOMAIN_NAME,
                "version": EIP712_DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": "0x" + "ab" * 20,
            },
            "message": {
                "user": USER.address,
                "provider": "0x" + "05" * 20,
                "baseModel": base_model,
                "datasetRoot": dataset_root,
                "paramsHash": params_hash,
                "fee": fee,
                "nonce": nonce,
            },
        }
    )
    wallet_signature = USER.sign_message(typed).signature
    assert sign_task(domain, task, USER.key) == bytes(wallet_signature)
    public_key = recover_task_signer(domain, task, bytes(wallet_signature))
    assert len(public_key) == 65
    assert compute_task_digest(domain, task) != compute_task_digest(
        TaskDomain(chain_id + 1, b"\xab" * 20), task
    )


def test_task_signed_by_someone_else_is_rejected() -> None:
    task = _task(bytes.fromhex(USER.address[2:]))
    with pytest.raises(InvalidTask, match="not signed by its user"):
        recover_task_signer(DOMAIN, task, sign_task(DOMAIN, task, OTHER.key))


@pytest.mark.parametrize(
    "field", ["provider", "base_model", "dataset_root", "params_hash", "fee", "nonce"]
)
def test_changing_any_signed_field_invalidates_the_signature(field: str) -> None:
    task = _task(bytes.fromhex(USER.address[2:]))
    signature = sign_task(DOMAIN, task, USER.key)
    value = getattr(task, field)
    changed = value + 1 if isinstance(value, int) else bytes([value[0] ^ 1]) + value[1:]
    with pytest.raises(InvalidTask):
        recover_task_signer(DOMAIN, _task(task.user, **{field: changed}), signature)


def test_malformed_signatures_and_fields_are_rejected() -> None:
    task = _task(bytes.fromhex(USER.address[2:]))
    with pytest.raises(InvalidTask, match="65 bytes"):
        recover_task_signer(DOMAIN, task, b"\x00" * 64)
    with pytest.raises(InvalidTask, match="v must be"):
        recover_task_signer(DOMAIN, task, b"\x01" * 64 + b"\x05")
    with pytest.raises(InvalidTask, match="dataset root must be 32 bytes"):
        compute_task_digest(DOMAIN, _task(task.user, dataset_root=b"\x01"))
    with pytest.raises(InvalidTask, match="uint256"):
        compute_task_digest(DOMAIN, _task(task.user, fee=2**256))


def test_recovered_key_is_the_users_key() -> None:
    import coincurve

    task = _task(bytes.fromhex(USER.address[2:]))
    public_key = recover_task_signer(DOMAIN, task, sign_task(DOMAIN, task, USER.key))
    assert compute_address(coincurve.PublicKey(public_key)).hex() == USER.address[2:].lower()


params = st.builds(
    TrainingParams,
    epochs=st.integers(1, MAX_EPOCHS),
    learning_rate=st.floats(min_value=1e-9, max_value=1.0),
    lora_rank=st.integers(1, 64),
    lora_alpha=st.integers(1, 1024),
    max_seq_tokens=st.integers(8, 2048),
    seed=st.integers(0, 2**64),
)


@given(params)
def test_training_params_round_trip_through_their_signed_bytes(value: TrainingParams) -> None:
    assert TrainingParams.decode(value.encode()) == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"nope", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"epochs": 0}', "epochs"),
        (b'{"epochs": 1.5}', "integer"),
        (b'{"learning_rate": 0}', "learning_rate"),
        (b'{"lora_rank": 1000}', "lora_rank"),
        (b'{"dropout": 0.1}', "unknown"),
        (b'{"epochs": true}', "integer"),
    ],
)
def test_bad_training_params_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        TrainingParams.decode(data)


@given(tokens=st.integers(0, 10**9), epochs=st.integers(0, 20), price=st.integers(0, 10**18))
def test_fee_is_price_times_tokens_times_epochs(tokens: int, epochs: int, price: int) -> None:
    fee = compute_training_fee(tokens, epochs, price)
    assert fee == price * tokens * epochs
    assert compute_training_fee(tokens + 1, epochs, price) >= fee


@given(fee=st.integers(0, 2**200), acknowledged=st.booleans(), penalty=st.integers(0, 100))
def test_settlement_never_pays_more_than_the_escrow(
    fee: int, acknowledged: bool, penalty: int
) -> None:
    to_provider, refund = compute_settlement(fee, acknowledged, penalty)
    assert to_provider + refund == fee
    assert 0 <= to_provider <= fee and refund >= 0
    if acknowledged:
        assert to_provider == fee
    else:
        assert to_provider == fee * penalty // 100


HAPPY_PATH = [
    TaskEvent.START_SETUP,
    TaskEvent.START_TRAINING,
    TaskEvent.START_DELIVERY,
    TaskEvent.DELIVERED,
    TaskEvent.ACKNOWLEDGED,
    TaskEvent.SETTLED,
]


def test_happy_path_runs_init_to_finished() -> None:
    state = TaskState.INIT
    seen = [state]
    for event in HAPPY_PATH:
        state = process_task_event(state, event)
        seen.append(state)
    assert seen == list(TaskState)[:7]


@given(st.lists(st.sampled_from(list(TaskEvent)), max_size=20))
def test_task_state_machine_rules(events: list[TaskEvent]) -> None:
    state = TaskState.INIT
    for event in events:
        try:
            new = process_task_event(state, event)
        except InvalidTransition:
            assert (state, event) not in TRANSITIONS
            continue
        assert state not in TERMINAL_STATES  # terminal states have no way out
        if state in (TaskState.DELIVERED, TaskState.ACKNOWLEDGED):
            assert new != TaskState.FAILED  # a delivered task ends only by settlement
        if new == TaskState.FINISHED:
            assert state in (TaskState.DELIVERED, TaskState.ACKNOWLEDGED)
        state = new


@given(st.sampled_from(list(TaskState)), st.integers(0, 10), st.integers(1, 10))
def test_resume_fails_only_restartable_states_out_of_attempts(
    state: TaskState, attempts: int, max_attempts: int
) -> None:
    event = compute_resume_event(state, attempts, max_attempts)
    if event is not None:
        assert event == TaskEvent.FAIL and attempts >= max_attempts
        assert process_task_event(state, event) == TaskState.FAILED


@given(uints, st.binary(min_size=20, max_size=20), uints, hashes, hashes, hashes)
def test_tuned_model_id_binds_base_and_adapter(chain_id: int, contract: bytes, task_id: int, base: bytes,
                                               adapter: bytes, other: bytes) -> None:
    """The id binds the task (chain, contract, task id), its base model and the root of the
    (encrypted) adapter it delivered, and carries the tuned tag that no base model id may."""
    from zgos.compute.spec.tasks import TUNED_ID_TAG, compute_tuned_model_id, is_tuned_model_id

    model_id = compute_tuned_model_id(chain_id, contract, task_id, base, adapter)
    assert len(model_id) == 32 and model_id.startswith(TUNED_ID_TAG) and is_tuned_model_id(model_id)
    assert model_id == compute_tuned_model_id(chain_id, contract, task_id, base, adapter)
    if other != adapter:
        assert compute_tuned_model_id(chain_id, contract, task_id, base, other) != model_id
    if other != base:
        assert compute_tuned_model_id(chain_id, contract, task_id, other, adapter) != model_id
    assert compute_tuned_model_id(chain_id, contract, (task_id + 1) % 2**256, base, adapter) != model_id
    assert model_id not in (base, adapter)


def test_tuned_model_id_matches_solidity_abi_encoding() -> None:
    """keccak256(abi.encode(uint256, address, uint256, bytes32, bytes32)), computed with eth-abi."""
    from eth_abi import encode

    from zgos.compute.spec.tasks import TUNED_ID_TAG, compute_tuned_model_id
    from zgos.core.hashing import keccak256

    contract, base, result = b"\xab" * 20, b"\x01" * 32, b"\x02" * 32
    digest = keccak256(encode(["uint256", "address", "uint256", "bytes32", "bytes32"],
                              [31337, "0x" + contract.hex(), 7, base, result]))
    assert compute_tuned_model_id(31337, contract, 7, base, result) == TUNED_ID_TAG + digest[:24]


def test_tuned_model_id_rejects_wrong_sizes() -> None:
    from zgos.compute.spec.tasks import compute_tuned_model_id

    with pytest.raises(InvalidTask, match="result root must be 32 bytes"):
        compute_tuned_model_id(1, b"\xab" * 20, 1, b"\x01" * 32, b"\x02" * 31)
    with pytest.raises(InvalidTask, match="FineTuningServing address must be 20 bytes"):
        compute_tuned_model_id(1, b"\xab" * 19, 1, b"\x01" * 32, b"\x02" * 32)
    with pytest.raises(InvalidTask, match="task id is not a uint256"):
        compute_tuned_model_id(1, b"\xab" * 20, -1, b"\x01" * 32, b"\x02" * 32)


@given(st.binary(min_size=1, max_size=300), st.binary(min_size=1, max_size=300))
def test_only_the_committed_sealed_key_passes_the_settlement_check(sealed: bytes, other: bytes) -> None:
    from zgos.compute.spec.tasks import compute_key_commitment, is_committed_key

    commitment = compute_key_commitment(sealed)
    assert is_committed_key(commitment, sealed)
    assert is_committed_key(commitment, other) == (other == sealed)
    assert not is_committed_key(commitment, b"")
    with pytest.raises(InvalidTask, match="empty"):
        compute_key_commitment(b"")
