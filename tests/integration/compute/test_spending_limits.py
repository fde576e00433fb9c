"""The proxy's spending limits against real brokers, the real model and anvil: a price cap that
failover respects, an hourly spend cap and a daily top-up cap that survive a restart."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.integration.compute.conftest import PRICES, BrokerProcess, RunningProxy
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.limits import SpendCaps
from zgos.compute.user.client import ComputeUser, body_with_defaults
from zgos.compute.user.proxy import Funding
from zgos.runtime.netutil import wait_until

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "Name a colour"}]
ZERO_ADDRESS = "0x" + "00" * 20


def _client(proxy: RunningProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.token, max_retries=0, timeout=60)


def _ask(proxy: RunningProxy) -> httpx.Response:
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 2}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=proxy.headers, timeout=60)


def _max_fee(user: ComputeUser, provider: str) -> int:
    return user.max_fee(user.service(provider), body_with_defaults({"messages": PROMPT, "max_tokens": 2}, MODEL))


def _restarted(user: ComputeUser) -> ComputeUser:
    """The same account and state dir in a new process's objects."""
    return ComputeUser(user.contracts, user.account, user.state_dir, tokens=user.tokens)


def test_a_provider_above_the_price_cap_is_never_chosen_by_failover(
    broker: BrokerProcess, start_broker: Callable[..., BrokerProcess], model_server: str,
    make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy], refused_url: str,
) -> None:
    # Within the cap but its model server is down; above the cap (1,000x) and working.
    dead = start_broker(refused_url, prices=PRICES)
    pricey = start_broker(model_server, prices=Prices(PRICES.input_price * 1000, PRICES.output_price * 1000))
    user = make_user(dead.provider.address)
    user.contracts.deposit(user.account, 10**16)  # auto top-up could fund any provider it picks
    providers = [dead.provider.address, pricey.provider.address]
    funding = Funding(top_up=10**15, max_balance=10**16)
    capped = run_proxy(user, providers, funding, max_price=PRICES.output_price)
    for _ in range(3):  # the first try fails over; later ones find the dead provider backed off
        answer = _ask(capped)
        assert answer.status_code == 502 and "every provider" in answer.json()["error"]["message"], answer.text
    assert capped.proxy.router.health[dead.provider.address].failures >= 1
    # the pricey provider was never called, funded, acknowledged or paid
    assert pricey.user(user.address) == {"served": 0, "receipted": 0, "inflight": 0, "requests": 0}
    assert user.contracts.sub_account(user.address, pricey.provider.address).balance == 0
    assert user.contracts.acknowledged_signer(user.address, pricey.provider.address).lower() == ZERO_ADDRESS
    listed = httpx.get(capped.url + "/v1/providers", headers=capped.headers, timeout=30).json()
    assert {p["provider"]: p["within_price_cap"] for p in listed["providers"]} == {
        dead.provider.address: True, pricey.provider.address: False}
    alone = run_proxy(user, [pricey.provider.address], funding, max_price=PRICES.output_price)
    refused = _ask(alone)
    assert refused.status_code == 404 and "price cap" in refused.json()["error"]["message"]
    assert pricey.user(user.address)["requests"] == 0
    # Control: without the cap the same failover reaches (and pays) the pricey provider.
    uncapped = run_proxy(_restarted(user), providers, funding)
    answer = _ask(uncapped)
    assert answer.status_code == 200 and answer.headers["zg-provider"] == pricey.provider.address
    del broker


def test_spending_stops_at_the_hourly_cap(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    max_fee = _max_fee(user, provider)
    cap = 2 * max_fee + max_fee // 2  # two requests' worst case fit, a third's does not
    proxy = run_proxy(user, [provider], caps=SpendCaps(per_hour=cap))
    answered = 0
    while (answer := _ask(proxy)).status_code == 200:
        answered += 1
        assert answered <= 3, "spent past the cap"
    assert answered == 2
    assert answer.status_code == 429 and answer.json()["error"]["type"] == "spend_limit_reached"
    assert f"spending cap of {cap} neuron per hour" in answer.json()["error"]["message"]
    assert 0 < int(answer.headers["retry-after"]) <= 3600
    # nothing was signed for the refused request: the broker saw two requests
    assert broker.user(user.address)["requests"] == 2
    receipted = user.ledger()["sub_accounts"][provider]["receipted"]
    assert 0 < receipted <= cap
    assert proxy.proxy.budget.summary()["spent"]["hour"] == receipted
    assert wait_until(lambda: broker.user(user.address)["receipted"] == receipted, 10)
    # A restarted proxy remembers what was spent in the last hour.
    proxy.stop()
    again = run_proxy(_restarted(user), [provider], caps=SpendCaps(per_hour=cap))
    assert _ask(again).status_code == 429
    with pytest.raises(openai.RateLimitError):
        _client(again).chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
    assert broker.user(user.address)["requests"] == 2
    # a daily cap below one request's worst case refuses at once, and says waiting will not help
    strict = run_proxy(_restarted(user), [provider], caps=SpendCaps(per_day=max_fee - 1))
    refused = _ask(strict)
    assert refused.status_code == 402 and "larger than the cap" in refused.json()["error"]["message"]


def test_automatic_top_ups_stop_at_their_cap(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider, fund=10)  # far too little for one request
    user.contracts.deposit(user.account, 10**16)
    step = _max_fee(user, provider) + 10  # each top-up pays for about one request
    funding = Funding(top_up=step, max_balance=10**18, max_per_day=2 * step)
    proxy = run_proxy(user, [provider], funding)
    assert _ask(proxy).status_code == 200  # topped up once
    assert _ask(proxy).status_code == 200  # and once more: the daily cap is reached
    refused = _ask(proxy)
    assert refused.status_code == 402 and refused.json()["error"]["type"] == "top_up_limit_reached"
    assert "cap" in refused.json()["error"]["message"]
    balance = user.contracts.sub_account(user.address, provider).balance
    assert balance == 10 + 2 * step
    assert proxy.proxy.budget.summary()["topped_up_today"] == 2 * step
    # a restarted proxy remembers today's top-ups
    proxy.stop()
    again = run_proxy(_restarted(user), [provider], funding)
    assert _ask(again).status_code == 402
    assert user.contracts.sub_account(user.address, provider).balance == balance
    assert broker.user(user.address)["requests"] == 2
