"""LedgerManager and InferenceServing on a real anvil: every revert path, constant-gas
settlement, and the Python voucher spec agreeing with the contract byte for byte."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import (
    ComputeContracts,
    ServiceNotRegistered,
    ServiceTerms,
    execution_gas,
)
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import Prices
from zgos.core.errors import TxReverted

MODEL_HASH = b"\x42" * 32
PRICES = Prices(input_price=10, output_price=20)


@pytest.fixture
def compute(chain: Chain, deployment: Deployment) -> ComputeContracts:
    return ComputeContracts.from_deployment(chain, deployment)


@pytest.fixture
def account_factory(chain: Chain) -> Callable[[], LocalAccount]:
    def make() -> LocalAccount:
        account: LocalAccount = Account.create()
        chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
        return account
    return make


def _register(compute: ComputeContracts, provider: LocalAccount, signer: str | None = None) -> None:
    compute.register(provider, url="http://127.0.0.1:1", model="gemma-3-270m", model_hash=MODEL_HASH,
                     prices=PRICES, signer=signer or provider.address)


def _receipt(compute: ComputeContracts, user: LocalAccount, provider: str, total: int) -> tuple[v.Receipt, bytes]:
    receipt = v.Receipt(user.address, provider, total)
    return receipt, v.sign_message(bytes(user.key), compute.domain, receipt)


def _reverts(fn: Callable[[], object], error: str) -> None:
    with pytest.raises(TxReverted) as caught:
        fn()
    assert error in caught.value.reason


def test_receipt_digest_matches_the_contract(compute: ComputeContracts, new_account: LocalAccount) -> None:
    provider = "0x" + "ab" * 20
    expected = v.compute_digest(compute.domain, v.Receipt(new_account.address, provider, 12345))
    onchain = compute.chain.call(compute.serving.functions.receiptDigest(
        new_account.address, compute.chain.w3.to_checksum_address(provider), 12345))
    assert bytes(onchain) == expected


def test_ledger_deposit_fund_withdraw_and_events(compute: ComputeContracts, new_account: LocalAccount) -> None:
    provider = Account.create().address
    deposit = compute.deposit(new_account, 5 * 10**18)
    assert deposit.events(compute.ledger, "Deposited")[0]["args"]["amount"] == 5 * 10**18
    funded = compute.fund(new_account, provider, 2 * 10**18)
    assert funded.events(compute.ledger, "Funded")[0]["args"]["provider"] == provider
    compute.withdraw(new_account, 10**18)
    assert compute.available(new_account.address) == 2 * 10**18
    assert compute.sub_account(new_account.address, provider).balance == 2 * 10**18
    assert compute.providers_of(new_account.address) == [provider]


def test_ledger_reverts(compute: ComputeContracts, new_account: LocalAccount) -> None:
    provider = Account.create().address
    _reverts(lambda: compute.deposit(new_account, 0), "ZeroAmount")
    _reverts(lambda: compute.withdraw(new_account, 1), "InsufficientBalance")
    _reverts(lambda: compute.withdraw(new_account, 0), "ZeroAmount")
    _reverts(lambda: compute.fund(new_account, provider, 1), "InsufficientBalance")
    _reverts(lambda: compute.fund(new_account, provider, 0), "ZeroAmount")
    _reverts(lambda: compute.deposit_and_fund(new_account, provider, 0), "ZeroAmount")
    _reverts(lambda: compute.request_refund(new_account, provider, 1), "InsufficientBalance")
    _reverts(lambda: compute.request_refund(new_account, provider, 0), "ZeroAmount")
    _reverts(lambda: compute.process_refund(new_account, provider), "NoRefundPending")
    fn = compute.ledger.functions
    _reverts(lambda: compute.chain.transact(new_account, fn.charge(new_account.address, provider, 1)), "NotServing")
    _reverts(lambda: compute.chain.transact(new_account, fn.setServing(provider, True)), "NotOwner")
    _reverts(lambda: compute.chain.transact(new_account, fn.setLockTime(1)), "NotOwner")
    _reverts(lambda: compute.chain.transact(devnet_role("deployer"), fn.setLockTime(10**9)), "InvalidLockTime")


def test_refund_unlocks_only_after_lock_time(compute: ComputeContracts, new_account: LocalAccount) -> None:
    provider = Account.create().address
    compute.deposit_and_fund(new_account, provider, 1000)
    requested = compute.request_refund(new_account, provider, 600)
    unlock_at = requested.events(compute.ledger, "RefundRequested")[0]["args"]["unlockAt"]
    assert compute.sub_account(new_account.address, provider).spendable == 400
    _reverts(lambda: compute.process_refund(new_account, provider), "RefundLocked")
    compute.chain.w3.provider.make_request("evm_increaseTime", [compute.lock_time() + 1])  # type: ignore[arg-type]
    compute.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    refunded = compute.process_refund(new_account, provider)
    assert refunded.events(compute.ledger, "Refunded")[0]["args"]["amount"] == 600
    assert unlock_at > 0
    assert compute.available(new_account.address) == 600
    assert compute.sub_account(new_account.address, provider).balance == 400


def test_registry_and_acknowledgement(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount], new_account: LocalAccount
) -> None:
    provider, signer = account_factory(), Account.create().address
    with pytest.raises(ServiceNotRegistered):
        compute.service(provider.address)
    _reverts(lambda: compute.acknowledge(new_account, provider.address, signer), "ServiceNotFound")
    _register(compute, provider, signer)
    service = compute.service(provider.address)
    assert (service.model, service.model_hash, service.prices, service.signer) == (
        "gemma-3-270m", MODEL_HASH, PRICES, signer)
    assert provider.address in [s.provider for s in compute.services()]
    _reverts(lambda: compute.acknowledge(new_account, provider.address, new_account.address), "SignerMismatch")
    compute.acknowledge(new_account, provider.address, signer)
    assert compute.acknowledged_signer(new_account.address, provider.address) == signer
    fn = compute.serving.functions
    for bad in (dict(url=""), dict(model=""), dict(model_hash=b"\x00" * 32), dict(signer="0x" + "00" * 20)):
        args = dict(url="http://x", model="m", model_hash=MODEL_HASH, prices=PRICES, signer=signer)
        args.update(bad)  # type: ignore[arg-type]
        _reverts(lambda a=args: compute.register(provider, **a), "InvalidService")  # type: ignore[misc]
    compute.remove_service(provider)
    _reverts(lambda: compute.chain.transact(provider, fn.removeService()), "ServiceNotFound")
    assert provider.address not in [s.provider for s in compute.services()]


def test_settlement_pays_receipts_once_and_reverts_on_bad_ones(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount], new_account: LocalAccount
) -> None:
    provider, stranger = account_factory(), account_factory()
    _register(compute, provider)
    compute.deposit_and_fund(new_account, provider.address, 1000)
    receipt, signature = _receipt(compute, new_account, provider.address, 300)
    settled = compute.settle(provider, [(receipt, signature)])
    assert settled.events(compute.serving, "Settled")[0]["args"]["amount"] == 300
    assert compute.settled(new_account.address, provider.address) == 300
    assert compute.available(provider.address) == 300
    # the same receipt again: nothing to settle (no double settlement)
    _reverts(lambda: compute.settle(provider, [(receipt, signature)]), "NothingToSettle")
    # a receipt signed by someone else, or altered, or for another provider
    forged = v.Receipt(new_account.address, provider.address, 900)
    _reverts(lambda: compute.settle(provider, [(forged, v.sign_message(bytes(stranger.key), compute.domain, forged))]),
             "InvalidReceiptSignature")
    _reverts(lambda: compute.settle(provider, [(forged, signature)]), "InvalidReceiptSignature")
    _reverts(lambda: compute.settle(provider, [(forged, b"\x01" * 10)]), "InvalidReceiptSignature")
    _reverts(lambda: compute.settle(stranger, [(receipt, signature)]), "InvalidReceiptSignature")
    # beyond the balance: pays what is there, the rest stays claimable with the same receipt
    big, big_sig = _receipt(compute, new_account, provider.address, 1500)
    assert compute.settle(provider, [(big, big_sig)]).events(compute.serving, "Settled")[0]["args"]["amount"] == 700
    _reverts(lambda: compute.settle(provider, [(big, big_sig)]), "NoBalance")
    compute.deposit_and_fund(new_account, provider.address, 1000)
    assert compute.settle(provider, [(big, big_sig)]).events(compute.serving, "Settled")[0]["args"]["amount"] == 500
    assert compute.settled(new_account.address, provider.address) == 1500
    _reverts(lambda: compute.chain.transact(provider, compute.serving.functions.settleBatch([])), "InvalidBatchSize")


def test_settlement_consumes_a_locked_refund(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount], new_account: LocalAccount
) -> None:
    provider = account_factory()
    _register(compute, provider)
    compute.deposit_and_fund(new_account, provider.address, 1000)
    compute.request_refund(new_account, provider.address, 1000)
    compute.settle(provider, [_receipt(compute, new_account, provider.address, 400)])
    account = compute.sub_account(new_account.address, provider.address)
    assert (account.balance, account.pending_refund) == (600, 600)


def test_batch_skips_bad_vouchers_and_pays_the_rest(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount]
) -> None:
    provider = account_factory()
    _register(compute, provider)
    users = [account_factory() for _ in range(3)]
    for user in users:
        compute.deposit_and_fund(user, provider.address, 100)
    good = [_receipt(compute, user, provider.address, 50) for user in users[:2]]
    bad = (v.Receipt(users[2].address, provider.address, 50), b"\x00" * 65)
    result = compute.settle(provider, [*good, bad])
    assert sum(e["args"]["amount"] for e in result.events(compute.serving, "Settled")) == 100
    skipped = result.events(compute.serving, "SettlementSkipped")
    assert [(e["args"]["user"], e["args"]["reason"]) for e in skipped] == [(users[2].address, 1)]


def test_settlement_gas_is_constant_in_the_number_of_requests(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount]
) -> None:
    provider = account_factory()
    _register(compute, provider)
    gas = []
    # the first settlement ever also creates the provider's ledger balance slot: warm it up
    for requests in (1, 1, 1000):
        user = account_factory()
        compute.deposit_and_fund(user, provider.address, 10**18)
        receipt = None
        for _ in range(requests):  # the same amount either way, so calldata is identical
            receipt = v.next_receipt(receipt, user.address, provider.address, 7000 // requests)
        assert receipt is not None
        settled = compute.settle(provider, [(receipt, v.sign_message(bytes(user.key), compute.domain, receipt))])
        gas.append(execution_gas(compute.chain, settled))
    assert gas[1] == gas[2]


def test_a_provider_restarted_with_unchanged_terms_sends_no_transaction(
    compute: ComputeContracts, account_factory: Callable[[], LocalAccount],
) -> None:
    provider = account_factory()
    terms = ServiceTerms("http://127.0.0.1:1", "gemma-3-270m", MODEL_HASH, PRICES, provider.address)
    assert compute.registered_terms(provider.address) is None
    assert compute.ensure_service(provider, terms) is True  # registered
    nonce = compute.chain.w3.eth.get_transaction_count(provider.address)
    assert compute.ensure_service(provider, terms) is False  # unchanged: one read, no transaction
    assert compute.chain.w3.eth.get_transaction_count(provider.address) == nonce
    repriced = ServiceTerms(terms.url, terms.model, terms.model_hash, Prices(11, 20), terms.signer)
    assert compute.ensure_service(provider, repriced) is True  # updated
    assert compute.registered_terms(provider.address) == repriced
