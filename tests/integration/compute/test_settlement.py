"""Settlement scales: hundreds of due users settle in chunks within the contract's batch limit,
receipts need served requests behind them, a bad entry never blocks the others, and a refund
never unlocks money a provider is owed. Real broker processes in front of the stub upstream
(``bench.compute_servers``), real anvil, real users signing real requests and receipts."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from web3.logs import DISCARD

from tests.integration.compute.conftest import BrokerProcess
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.compute.contracts import ComputeContracts
from zgos.compute.spec import settlement
from zgos.compute.spec import vouchers as v
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.runtime.netutil import wait_until

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
CROWD = 250


def ready_users(chain: Chain, compute: ComputeContracts, provider: str, count: int, tokens: TokenCounter,
                state: Path) -> list[ComputeUser]:
    """``count`` users with a funded sub-account with ``provider`` and its signer acknowledged."""
    service = compute.service(provider)

    def one(_: int) -> ComputeUser:
        account = Account.create()
        chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**18)])  # type: ignore[arg-type]
        compute.deposit_and_fund(account, provider, 10**15)
        user = ComputeUser(compute, account, state / account.address, tokens=tokens)
        user.acknowledge(service)
        return user

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def serve_each(users: list[ComputeUser], provider: str) -> dict[str, int]:
    """Every user makes one paid request and receipts it; returns each user's receipted total."""
    def one(user: ComputeUser) -> tuple[str, int]:
        return user.address, user.chat(provider, PROMPT, max_tokens=1).receipt.total

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, users))


@pytest.fixture(scope="module")
def crowd(start_broker: Callable[..., BrokerProcess], stub_upstream: str, chain: Chain, compute: ComputeContracts,
          tokens: TokenCounter, tmp_path_factory: pytest.TempPathFactory) -> tuple[BrokerProcess, list[ComputeUser]]:
    """A broker (scheduled settlement off) and ``CROWD`` users ready to pay it."""
    broker = start_broker(stub_upstream, "--settle-interval", "3600")
    users = ready_users(chain, compute, broker.provider.address, CROWD, tokens, tmp_path_factory.mktemp("crowd"))
    return broker, users


def _receipt_payload(user: ComputeUser, provider: str, total: int) -> dict[str, object]:
    receipt = v.Receipt(user.address, provider.lower(), total)
    signature = v.sign_message(bytes(user.account.key), user.contracts.domain, receipt)
    return {"user": user.account.address, "total": total, "signature": "0x" + signature.hex()}


def test_250_users_with_due_receipts_all_settle_within_3_rounds(
    crowd: tuple[BrokerProcess, list[ComputeUser]], compute: ComputeContracts
) -> None:
    broker, users = crowd
    provider = broker.provider.address
    receipted = serve_each(users, provider)  # each receipt is posted before chat() returns
    assert all(broker.user(a)["receipted"] == t for a, t in list(receipted.items())[:5])
    rounds = []
    for _ in range(3):
        rounds.append(broker.settle())
        if all(compute.settled(a, provider) == t for a, t in receipted.items()):
            break
    unpaid = {a: (compute.settled(a, provider), t) for a, t in receipted.items() if compute.settled(a, provider) != t}
    assert not unpaid, f"{len(unpaid)} users unpaid after {len(rounds)} rounds: {rounds}"
    # in chunks the contract accepts (it reverts above its batch limit)
    txs = [tx for result in rounds for tx in result["txs"]]  # type: ignore[attr-defined]
    assert len(txs) >= 2
    for tx in txs:
        receipt = compute.chain.w3.eth.get_transaction_receipt(tx)
        settled = compute.serving.events.Settled().process_receipt(receipt, errors=DISCARD)
        assert 0 < len(settled) <= settlement.MAX_VOUCHERS_PER_BATCH
    assert broker.settle()["paid"] == 0  # nothing twice


def test_sybil_receipts_with_no_requests_behind_them_are_refused(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, chain: Chain, compute: ComputeContracts,
    tokens: TokenCounter, tmp_path: Path,
) -> None:
    broker = start_broker(stub_upstream, "--settle-interval", "3600")
    provider = broker.provider.address
    honest, *sybils = ready_users(chain, compute, provider, 4, tokens, tmp_path)
    stranger = ComputeUser(compute, Account.create(), tmp_path / "stranger", tokens=tokens)  # no sub-account
    for sybil in [*sybils, stranger]:  # funded or not, acknowledged or not: no request, no receipt
        refused = httpx.post(broker.url + "/v1/proxy/receipt", json=_receipt_payload(sybil, provider, 1), timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]["type"] == "receipt-without-service"
    served = honest.chat(provider, PROMPT, max_tokens=1).receipt.total
    too_much = httpx.post(broker.url + "/v1/proxy/receipt", json=_receipt_payload(honest, provider, served + 1),
                          timeout=10)
    assert too_much.status_code == 400  # a receipt cannot claim more than was served either
    assert broker.user(honest.address)["receipted"] == served
    result = broker.settle()
    assert result["settled"] == 1 and result["paid"] == served
    assert all(compute.settled(s.address, provider) == 0 for s in [*sybils, stranger])
    assert broker.status()["users"] == 1


def test_a_refund_cannot_unlock_money_a_provider_is_owed(
    crowd: tuple[BrokerProcess, list[ComputeUser]], chain: Chain, compute: ComputeContracts, tokens: TokenCounter,
    tmp_path: Path,
) -> None:
    """With more than a batch of users owing the provider, the newest debtor asks for all its
    money back: the broker sees the refund within seconds and settles that user first, so
    when the refund unlocks it returns only what the provider was not owed."""
    broker, users = crowd
    provider = broker.provider.address
    receipted = serve_each(users, provider)  # 250 users owe the provider (not settled: no schedule)
    victim = ready_users(chain, compute, provider, 1, tokens, tmp_path)[0]
    owed = sum(victim.chat(provider, PROMPT, max_tokens=1).response.fee for _ in range(3))
    assert wait_until(lambda: broker.user(victim.address)["receipted"] == owed, 15)
    balance = compute.sub_account(victim.address, provider).balance
    earned = compute.available(provider)
    victim.refund(provider)  # asks for everything in the sub-account
    assert wait_until(lambda: compute.settled(victim.address, provider) == owed, 60), broker.log_tail()  # lock: 24 h
    # the refund round paid the refunding user alone, ahead of the 250 older debts
    assert sum(compute.settled(a, provider) == t for a, t in receipted.items()) < len(receipted)
    assert compute.available(provider) - earned == owed
    chain.w3.provider.make_request("evm_increaseTime", [compute.lock_time() + 1])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    available = compute.available(victim.address)
    assert victim.refund(provider)["processed"] is True
    assert compute.available(victim.address) - available == balance - owed
    assert compute.available(provider) - earned == owed


def test_a_failing_settlement_entry_never_blocks_the_others(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, chain: Chain, compute: ComputeContracts,
    tokens: TokenCounter, tmp_path: Path,
) -> None:
    """A user empties its sub-account while the provider is offline past the lock time: its
    entry is skipped (reported by the contract), every other user is paid, the empty one is
    not retried until it funds the sub-account again."""
    broker = start_broker(stub_upstream, "--settle-interval", "3600")
    provider = broker.provider.address
    users = ready_users(chain, compute, provider, 4, tokens, tmp_path)
    receipted = serve_each(users, provider)
    assert wait_until(lambda: all(broker.user(a)["receipted"] == t for a, t in receipted.items()), 15)
    broker.kill()
    runaway = users[0]
    runaway.refund(provider)
    chain.w3.provider.make_request("evm_increaseTime", [compute.lock_time() + 1])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert runaway.refund(provider)["processed"] is True  # the provider's loss: offline past the lock
    broker.start()  # settles at start: the empty entry is skipped, the others paid
    others = users[1:]
    assert wait_until(lambda: all(compute.settled(u.address, provider) == receipted[u.address] for u in others), 30)
    assert compute.settled(runaway.address, provider) == 0
    assert broker.settle()["users"] == 0  # not retried while the sub-account stays empty
    compute.fund(runaway.account, provider, 10**12)  # from the refunded money
    assert wait_until(lambda: broker.settle()["settled"] == 1, 30)  # funded again: paid
    assert compute.settled(runaway.address, provider) == receipted[runaway.address]


def test_a_settlement_that_reverts_is_split_set_aside_and_retried(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, chain: Chain, compute: ComputeContracts,
    tokens: TokenCounter, tmp_path: Path,
) -> None:
    """The ledger refuses every charge for a while (its owner revoked the serving contract):
    each chunk reverts at estimation (no gas spent), is split down to single entries and set
    aside; the broker keeps serving, and the next scheduled round pays everyone."""
    broker = start_broker(stub_upstream, "--settle-interval", "3600")
    provider = broker.provider.address
    users = ready_users(chain, compute, provider, 4, tokens, tmp_path)
    receipted = serve_each(users, provider)
    owner = devnet_role("deployer")
    compute.chain.transact(owner, compute.ledger.functions.setServing(compute.serving.address, False))
    try:
        result = broker.settle()
        assert sorted(result["failed"]) == sorted(receipted) and not result["txs"]  # type: ignore[call-overload]
        assert all(compute.settled(a, provider) == 0 for a in receipted)
        assert serve_each(users[:1], provider)  # still serving
    finally:
        compute.chain.transact(owner, compute.ledger.functions.setServing(compute.serving.address, True))
    result = broker.settle()
    assert result["settled"] == 4 and not result["failed"]
    assert all(compute.settled(u.address, provider) == broker.user(u.address)["receipted"] for u in users)
