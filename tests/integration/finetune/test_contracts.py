"""FineTuningServing and ModelRegistry on a real anvil: every security claim of issues 8 and 13."""

from __future__ import annotations

import os

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.finetune.conftest import advance_time, funded_account
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry, OnchainStatus
from zgos.compute.spec.tasks import (
    TrainingParams,
    compute_key_commitment,
    compute_params_hash,
    compute_tuned_model_id,
    is_tuned_model_id,
)
from zgos.core.errors import TxReverted
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import Submission, SubmissionNode

BASE_MODEL = b"\xba" * 32
PRICE = 10**9
FEE = 10**16
PARAMS = TrainingParams(epochs=2).encode()
SEALED_KEY = b"sealed-key"  # what the test providers commit to and release


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
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount, fee: int = FEE,
    base_model: bytes = BASE_MODEL,
) -> int:
    nonce = int.from_bytes(os.urandom(8), "big")
    return market.create_task(
        user, provider.address, base_model, os.urandom(32), PARAMS, fee, nonce
    )


def _delivered(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount, base_model: bytes = BASE_MODEL,
) -> tuple[int, bytes]:
    task_id = _create(market, user, provider, base_model=base_model)
    market.start_task(provider, task_id)
    root = os.urandom(32)
    market.add_deliverable(provider, task_id, root, compute_key_commitment(SEALED_KEY))
    return task_id, root


def _uploaded(chain: Chain, deployment: Deployment, account: LocalAccount, data: bytes) -> bytes:
    """Submit ``data``'s root to the Flow as ``account`` (its first uploader); the root."""
    tree = FileTree.from_bytes(data)
    FlowContract(chain, deployment.address("Flow")).submit(account, [tree.submission()])
    return tree.root


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
    from zgos.compute.spec.tasks import sign_task

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
    receipt = market.settle(provider, task_id, SEALED_KEY)
    settled = receipt.events(market.contract, "FeesSettled")[0]["args"]
    assert (settled["toProvider"], settled["refunded"]) == (FEE, 0)
    assert chain.balance(market.address) == contract_before - FEE
    task = market.get_task(task_id)
    assert task.status == OnchainStatus.SETTLED and task.sealed_key == SEALED_KEY
    with pytest.raises(TxReverted, match="WrongStatus"):
        market.settle(provider, task_id, SEALED_KEY)
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
        market.add_deliverable(provider, task_id, b"\x01" * 32, compute_key_commitment(SEALED_KEY))


def test_provider_rejection_refunds_the_whole_fee(
    chain: Chain, market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    task_id = _create(market, user, provider)
    before = chain.balance(user.address)
    market.reject_task(provider, task_id, "dataset over quota")
    assert chain.balance(user.address) == before + FEE
    assert market.get_task(task_id).status == OnchainStatus.CANCELLED


def _published_base(chain: Chain, deployment: Deployment, market: FineTuningMarket, registry: ModelRegistry,
                    provider: LocalAccount) -> bytes:
    """A base model file the provider uploaded and registered, offered by its service."""
    base = _uploaded(chain, deployment, provider, b"base model weights " + os.urandom(16))
    registry.register_base_model(provider, base, "gemma-3-270m", "gemma")
    market.add_or_update_service(provider, "http://127.0.0.1:1/ft", PRICE, 10**6, 10**5, [BASE_MODEL, base])
    return base


def test_lineage_of_a_fine_tuned_model_is_one_chain_query(
    chain: Chain,
    deployment: Deployment,
    market: FineTuningMarket,
    registry: ModelRegistry,
    user: LocalAccount,
    provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    base = _published_base(chain, deployment, market, registry, provider)
    task_id, root = _delivered(market, user, provider, base)
    with pytest.raises(TxReverted, match="TaskNotSettled"):
        registry.register_fine_tuned_model(user, task_id, "tuned", "apache-2.0")
    market.acknowledge(user, task_id, root)
    market.settle(provider, task_id, SEALED_KEY)
    with pytest.raises(TxReverted, match="NotTaskUser"):
        registry.register_fine_tuned_model(stranger, task_id, "tuned", "apache-2.0")
    tuned = registry.register_fine_tuned_model(user, task_id, "tuned", "apache-2.0")
    with pytest.raises(TxReverted, match="TaskAlreadyRegistered"):
        registry.register_fine_tuned_model(user, task_id, "again", "mit")
    lineage = registry.lineage(tuned)
    assert [node.id for node in lineage] == [tuned, base]
    task = market.get_task(task_id)
    node = lineage[0]
    assert node.parent == base and node.datasets == (task.dataset_root,)
    assert (node.task_id, node.trainer, node.owner) == (task_id, provider.address, user.address)
    assert node.deliverable_root == root
    with pytest.raises(TxReverted, match="ReservedId"):
        registry.register_base_model(stranger, tuned, "squat", "none")


def test_a_squatter_cannot_register_someone_elses_model_root_or_a_tuned_models_id(
    chain: Chain,
    deployment: Deployment,
    market: FineTuningMarket,
    registry: ModelRegistry,
    user: LocalAccount,
    provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    """A base model id is its file's storage root: only the root's first uploader registers it,
    even if the squatter pays to submit the same file again. A tuned model's id is derived on
    chain from its task: public as soon as the task is delivered, yet nobody can take it first,
    not even by submitting a fake file with that root to the Flow."""
    weights = b"someone else's model " + os.urandom(16)
    root = _uploaded(chain, deployment, provider, weights)
    assert _uploaded(chain, deployment, stranger, weights) == root  # a later, paid, submission
    with pytest.raises(TxReverted, match="NotUploader"):
        registry.register_base_model(stranger, root, "mine now", "none")
    with pytest.raises(TxReverted, match="NotUploader"):
        registry.register_base_model(stranger, os.urandom(32), "never uploaded", "none")
    assert not registry.is_registered(root)
    registry.register_base_model(provider, root, "the uploader's", "apache-2.0")
    assert registry.get_model(root).owner == provider.address

    market.add_or_update_service(provider, "http://127.0.0.1:1/ft", PRICE, 10**6, 10**5, [BASE_MODEL, root])
    task_id, result = _delivered(market, user, provider, root)
    tuned = registry.tuned_model_id(task_id)  # public from delivery on
    assert tuned == compute_tuned_model_id(chain.chain_id, bytes.fromhex(market.address[2:]), task_id, root, result)
    assert is_tuned_model_id(tuned)
    squat = Submission(100, b"", (SubmissionNode(tuned, 0),))  # one sector whose "root" the squatter picks
    FlowContract(chain, deployment.address("Flow")).submit(stranger, [squat])
    first = FlowContract(chain, deployment.address("Flow")).file_of(tuned)
    assert first is not None and first.submitter == stranger.address, "the squatter 'uploaded' the tuned id"
    with pytest.raises(TxReverted, match="ReservedId"):
        registry.register_base_model(stranger, tuned, "squat", "none")
    market.acknowledge(user, task_id, result)
    market.settle(provider, task_id, SEALED_KEY)
    with pytest.raises(TxReverted, match="NotTaskUser"):
        registry.register_fine_tuned_model(stranger, task_id, "squat", "none")
    assert registry.register_fine_tuned_model(user, task_id, "tuned", "apache-2.0") == tuned
    assert [n.id for n in registry.lineage(tuned)] == [tuned, root]
    assert registry.get_model(tuned).owner == user.address


def test_settlement_releases_only_the_key_committed_at_delivery(
    market: FineTuningMarket, user: LocalAccount, provider: LocalAccount
) -> None:
    """Fair exchange, the part the chain can check: the provider commits to the sealed key when
    it delivers, and settlement accepts that key only (the user acknowledged knowing it)."""
    task_id = _create(market, user, provider)
    market.start_task(provider, task_id)
    root = os.urandom(32)
    with pytest.raises(TxReverted, match="EmptyKeyCommitment"):
        market.add_deliverable(provider, task_id, root, b"\x00" * 32)
    market.add_deliverable(provider, task_id, root, compute_key_commitment(SEALED_KEY))
    assert market.get_task(task_id).key_commitment == compute_key_commitment(SEALED_KEY)
    market.acknowledge(user, task_id, root)
    for wrong in (b"another key", SEALED_KEY + b"\x00", SEALED_KEY[:-1]):
        with pytest.raises(TxReverted, match="KeyMismatch"):
            market.settle(provider, task_id, wrong)
    assert market.get_task(task_id).status == OnchainStatus.ACKNOWLEDGED, "nothing paid against a wrong key"
    market.settle(provider, task_id, SEALED_KEY)
    task = market.get_task(task_id)
    assert task.status == OnchainStatus.SETTLED and task.sealed_key == SEALED_KEY


def test_providers_are_read_page_by_page(chain: Chain, market: FineTuningMarket, new_account: LocalAccount) -> None:
    """Anyone can add a service, so the provider list is read in pages of at most MAX_PAGE."""
    added = [funded_account(chain, new_account, 10**17) for _ in range(3)]
    for account in added:
        market.add_or_update_service(account, "http://127.0.0.1:1/ft", PRICE, 10**6, 10**5, [BASE_MODEL])
    everything = market.providers()
    assert everything[-3:] == [a.address for a in added]
    functions = market.contract.functions
    paged: list[str] = []
    for offset in range(0, len(everything) + 1):
        page, total = chain.call(functions.providersPage(offset, 1))
        assert total == len(everything) and len(page) == (1 if offset < total else 0)
        paged += list(page)
    assert paged == everything
    assert int(chain.call(functions.MAX_PAGE())) == 100
    assert len(chain.call(functions.providersPage(0, 10**9))[0]) == min(len(everything), 100)
    assert market.providers(limit=2) == everything[:2]
