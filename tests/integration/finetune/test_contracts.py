"""FineTuningServing and ModelRegistry on a real anvil: every security claim of issue 8."""

from __future__ import annotations

import os

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.finetune.conftest import advance_time, funded_account
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.finetune.market import FineTuningMarket, ModelRegistry, OnchainStatus
from zgos.compute.finetune.tasks import TrainingParams, compute_params_hash
from zgos.core.errors import TxReverted

BASE_MODEL = b"\xba" * 32
PRICE = 10**9
FEE = 10**16
PARAMS = TrainingParams(epochs=2).encode()


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> ModelRegistry:
    return ModelRegistry(chain, deployment.address("ModelRegistry"))


@pytest.fixture
def provider(chain: Chain, market: FineTuningMarket, new_account: LocalAccount) -> LocalAccount:
    market.add_or_update_service(
        new_account, "http://127.0.0.1:1/ft", PRICE, 10**6, 10**5, [BASE_MODEL]
    )
    return new_account


@pytest.fixture
def stranger(chain: Chain, new_account: LocalAccount) -> LocalAccount:
    return funded_account(chain, new_account, 10 * 10**18)


def _create(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount, fee: int = FEE
) -> int:
    nonce = int.from_bytes(os.urandom(8), "big")
    return market.create_task(
        user, provider.address, BASE_MODEL, os.urandom(32), PARAMS, fee, nonce
    )


def _delivered(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> tuple[int, bytes]:
    task_id = _create(market, user, provider)
    market.start_task(provider, task_id)
    root = os.urandom(32)
    market.add_deliverable(provider, task_id, root)
    return task_id, root


def test_task_escrows_the_fee_and_records_the_signed_request(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    before = chain.balance(market.address)
    task_id = _create(market, user, provider)
    task = market.get_task(task_id)
    assert chain.balance(market.address) == before + FEE
    assert (task.user, task.provider, task.fee) == (user.address, provider.address, FEE)
    assert task.params_hash == compute_params_hash(PARAMS)
    assert task.status == OnchainStatus.CREATED
    event = market.task_created_event(task_id)
    assert bytes(event["params"]) == PARAMS and len(event["signature"]) == 65


def test_task_with_a_forged_or_replayed_signature_is_refused(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount, stranger: LocalAccount
) -> None:
    request = market.task_request(
        user.address, provider.address, BASE_MODEL, b"\x01" * 32, PARAMS, FEE, 7
    )
    from zgos.compute.finetune.tasks import sign_task

    forged = sign_task(market.domain, request, bytes(stranger.key))
    with pytest.raises(TxReverted, match="BadSignature"):
        market.create_task(
            user, provider.address, BASE_MODEL, b"\x01" * 32, PARAMS, FEE, 7, signature=forged
        )
    # the signature covers the params: other params with the same signature are refused
    good = sign_task(market.domain, request, bytes(user.key))
    with pytest.raises(TxReverted, match="BadSignature"):
        market.create_task(
            user, provider.address, BASE_MODEL, b"\x01" * 32, b"{}", FEE, 7, signature=good
        )
    market.create_task(
        user, provider.address, BASE_MODEL, b"\x01" * 32, PARAMS, FEE, 7, signature=good
    )
    with pytest.raises(TxReverted, match="NonceUsed"):
        market.create_task(user, provider.address, BASE_MODEL, b"\x01" * 32, PARAMS, FEE, 7)
    with pytest.raises(TxReverted, match="ModelNotOffered"):
        market.create_task(user, provider.address, b"\x99" * 32, b"\x01" * 32, PARAMS, FEE, 8)


def test_someone_else_cannot_acknowledge_or_cancel(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount, stranger: LocalAccount
) -> None:
    created = _create(market, user, provider)
    with pytest.raises(TxReverted, match="NotTaskUser"):
        market.cancel_task(stranger, created)
    with pytest.raises(TxReverted, match="NotTaskUser"):
        market.cancel_task(provider, created)
    task_id, root = _delivered(market, user, provider)
    for other in (stranger, provider):
        with pytest.raises(TxReverted, match="NotTaskUser"):
            market.acknowledge(other, task_id, root)
    assert market.get_task(task_id).status == OnchainStatus.DELIVERED


def test_deliverable_whose_root_does_not_match_is_not_acknowledged(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id, root = _delivered(market, user, provider)
    with pytest.raises(TxReverted, match="RootMismatch"):
        market.acknowledge(user, task_id, bytes([root[0] ^ 1]) + root[1:])
    assert market.get_task(task_id).status == OnchainStatus.DELIVERED
    market.acknowledge(user, task_id, root)
    assert market.get_task(task_id).status == OnchainStatus.ACKNOWLEDGED


def test_settlement_pays_the_provider_the_escrow_once_and_releases_the_key(
    chain: Chain,
    market: FineTuningMarket,
    user: LocalAccount,
    provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    task_id, root = _delivered(market, user, provider)
    with pytest.raises(TxReverted, match="TooEarly"):
        market.settle(provider, task_id, b"sealed")  # not acknowledged, not timed out: no
    market.acknowledge(user, task_id, root)
    with pytest.raises(TxReverted, match="NotTaskProvider"):
        market.settle(stranger, task_id, b"sealed")
    with pytest.raises(TxReverted, match="SealedKeyRequired"):
        market.settle(provider, task_id, b"")
    contract_before = chain.balance(market.address)
    receipt = market.settle(provider, task_id, b"sealed-key")
    settled = receipt.events(market.contract, "FeesSettled")[0]["args"]
    assert (settled["toProvider"], settled["refunded"]) == (FEE, 0)
    assert chain.balance(market.address) == contract_before - FEE
    task = market.get_task(task_id)
    assert task.status == OnchainStatus.SETTLED and task.sealed_key == b"sealed-key"
    with pytest.raises(TxReverted, match="WrongStatus"):
        market.settle(provider, task_id, b"sealed-key")
    assert chain.balance(market.address) == contract_before - FEE


def test_unacknowledged_deliverable_settles_with_the_penalty_split_after_the_timeout(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id, _ = _delivered(market, user, provider)
    with pytest.raises(TxReverted, match="TooEarly"):
        market.settle(provider, task_id, b"")
    advance_time(chain, market.ack_timeout_s() + 1)
    with pytest.raises(TxReverted, match="SealedKeyNotAllowed"):
        market.settle(provider, task_id, b"key")
    user_before = chain.balance(user.address)
    receipt = market.settle(provider, task_id, b"")
    penalty = FEE * market.penalty_percent() // 100
    settled = receipt.events(market.contract, "FeesSettled")[0]["args"]
    assert (settled["toProvider"], settled["refunded"]) == (penalty, FEE - penalty)
    assert chain.balance(user.address) == user_before + FEE - penalty
    assert market.get_task(task_id).sealed_key == b""


def test_cancellation_before_start_refunds_and_after_start_is_refused(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id = _create(market, user, provider)
    before = chain.balance(user.address)
    receipt = market.cancel_task(user, task_id)
    gas = receipt.gas_used * int(receipt.raw["effectiveGasPrice"])
    assert chain.balance(user.address) == before + FEE - gas
    assert market.get_task(task_id).status == OnchainStatus.CANCELLED
    started = _create(market, user, provider)
    market.start_task(provider, started)
    with pytest.raises(TxReverted, match="WrongStatus"):
        market.cancel_task(user, started)


def test_provider_that_never_delivers_lets_the_user_reclaim_the_escrow(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id = _create(market, user, provider)
    market.start_task(provider, task_id)
    with pytest.raises(TxReverted, match="TooEarly"):
        market.reclaim_task(user, task_id)
    advance_time(chain, market.delivery_timeout_s() + 1)
    market.reclaim_task(user, task_id)
    assert market.get_task(task_id).status == OnchainStatus.CANCELLED
    with pytest.raises(TxReverted, match="WrongStatus"):
        market.add_deliverable(provider, task_id, b"\x01" * 32)


def test_provider_rejection_refunds_the_whole_fee(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id = _create(market, user, provider)
    before = chain.balance(user.address)
    market.reject_task(provider, task_id, "dataset over quota")
    assert chain.balance(user.address) == before + FEE
    assert market.get_task(task_id).status == OnchainStatus.CANCELLED


def test_lineage_of_a_fine_tuned_model_is_one_chain_query(
    market: FineTuningMarket,
    registry: ModelRegistry,
    user: LocalAccount,
    provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    if not registry.is_registered(BASE_MODEL):
        registry.register_base_model(provider, BASE_MODEL, "gemma-3-270m", "gemma")
    task_id, root = _delivered(market, user, provider)
    tuned = os.urandom(32)
    with pytest.raises(TxReverted, match="TaskNotSettled"):
        registry.register_fine_tuned_model(user, task_id, tuned, "tuned", "apache-2.0")
    market.acknowledge(user, task_id, root)
    market.settle(provider, task_id, b"sealed")
    with pytest.raises(TxReverted, match="NotTaskUser"):
        registry.register_fine_tuned_model(stranger, task_id, tuned, "tuned", "apache-2.0")
    registry.register_fine_tuned_model(user, task_id, tuned, "tuned", "apache-2.0")
    with pytest.raises(TxReverted, match="TaskAlreadyRegistered"):
        registry.register_fine_tuned_model(user, task_id, os.urandom(32), "again", "mit")
    chain = registry.lineage(tuned)
    assert [node.id for node in chain] == [tuned, BASE_MODEL]
    task = market.get_task(task_id)
    node = chain[0]
    assert node.parent == BASE_MODEL and node.datasets == (task.dataset_root,)
    assert (node.task_id, node.trainer, node.owner) == (task_id, provider.address, user.address)
    assert node.deliverable_root == root
    with pytest.raises(TxReverted, match="AlreadyRegistered"):
        registry.register_base_model(stranger, tuned, "squat", "none")
