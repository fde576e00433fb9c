"""``zg compute serve``'s proxy with the stock openai client, against real brokers and the real
model: verified answers, streaming, dishonest providers caught, failover, funding bound."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.integration.compute.conftest import PRICES, BrokerProcess, RunningProxy
from zgos.compute.spec.billing import Prices
from zgos.compute.user.client import ComputeUser
from zgos.compute.user.proxy import Funding
from zgos.runtime.netutil import wait_until

PROMPT = [{"role": "user", "content": "Name a colour"}]
MODEL = "gemma-3-270m"


def _client(proxy: RunningProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.token, max_retries=0, timeout=60)


def _receipted(user: ComputeUser, provider: str) -> int:
    return int(user.ledger()["sub_accounts"].get(provider, {}).get("receipted", 0))


def test_openai_client_works_through_the_local_proxy_streaming_included(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    proxy = run_proxy(user, [provider])
    client = _client(proxy)
    assert [m.id for m in client.models.list()] == [MODEL]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT, max_tokens=4)  # type: ignore[arg-type]
    assert raw.headers["zg-verified"] == "true"
    assert raw.parse().choices[0].message.content
    checked = httpx.post(proxy.url + "/v1/verify", json={"id": raw.headers["zg-res-key"]}, headers=proxy.headers,
                         timeout=30).json()
    assert checked["signature_valid"] and checked["matches_local_record"] and checked["model"] == MODEL
    assert httpx.post(proxy.url + "/v1/verify", json={"id": "0x00"}, headers=proxy.headers,
                      timeout=30).status_code == 404
    after_one = _receipted(user, provider)
    assert after_one > 0
    chunks = list(client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4, stream=True))  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    total = _receipted(user, provider)
    assert total > after_one
    # the receipts reach the broker, which bills exactly what the user receipted
    assert wait_until(lambda: broker.user(user.address)["receipted"] == total, 10)
    assert broker.user(user.address)["served"] == total


@pytest.mark.parametrize("mode", ["overbill", "alter"])
def test_dishonest_provider_is_caught_and_no_receipt_is_signed(
    mode: str, start_broker: Callable[..., BrokerProcess], model_server: str,
    make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy],
) -> None:
    cheat = start_broker(model_server, "--dishonest", mode, env={"ZGOS_TEST_DISHONEST": "1"})
    provider = cheat.provider.address
    user = make_user(provider)
    proxy = run_proxy(user, [provider])
    client = _client(proxy)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=3)  # type: ignore[arg-type]
    assert caught.value.status_code == 502 and "rejected" in str(caught.value)
    stream = client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=3, stream=True)  # type: ignore[call-overload]
    with pytest.raises(openai.APIError):
        list(stream)
    assert _receipted(user, provider) == 0
    assert proxy.proxy.router.health[provider].flagged
    assert cheat.user(user.address)["receipted"] == 0


def test_proxy_fails_over_to_a_working_provider(
    broker: BrokerProcess, start_broker: Callable[..., BrokerProcess], make_user: Callable[..., ComputeUser],
    run_proxy: Callable[..., RunningProxy], refused_url: str,
) -> None:
    # a provider whose model server is down, and the cheapest, so the router tries it first
    dead = start_broker(refused_url, prices=Prices(PRICES.input_price - 1, PRICES.output_price))
    user = make_user(dead.provider.address)
    user.contracts.deposit_and_fund(user.account, broker.provider.address, 10**15)
    user.acknowledge(user.service(broker.provider.address))
    proxy = run_proxy(user, [dead.provider.address, broker.provider.address])
    client = _client(proxy)
    for _ in range(2):
        answer = client.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert answer.headers["zg-provider"] == broker.provider.address
    assert proxy.proxy.router.health[dead.provider.address].failures >= 1
    assert dead.user(user.address)["served"] == 0


def test_proxy_tops_up_within_its_funding_bound(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider, fund=10)  # far too little for one request
    user.contracts.deposit(user.account, 10**16)
    client = _client(run_proxy(user, [provider], Funding(top_up=10**15, max_balance=10**15 + 10)))
    client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
    assert user.contracts.sub_account(user.address, provider).balance == 10**15 + 10
    capped = make_user(provider, fund=10)
    capped.contracts.deposit(capped.account, 10**16)
    client = _client(run_proxy(capped, [provider], Funding(top_up=10**15, max_balance=10**14)))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
    assert caught.value.status_code == 402
    assert capped.contracts.sub_account(capped.address, provider).balance == 10
