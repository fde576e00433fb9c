"""OpenRouter-style routing preferences through ``zg compute serve``'s proxy, with the stock
openai client's ``extra_body`` (issue 17 §3): sort, only, ignore, max_price, and ``models``
fallbacks, against two real brokers of one model at different prices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.integration.compute.conftest import BrokerProcess, RunningProxy
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import DEFAULT_MODEL_ID
from zgos.compute.spec.billing import Prices
from zgos.compute.user.client import ComputeUser

QUESTION = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def two_brokers(start_broker: Callable[..., BrokerProcess], stub_upstream: str) -> tuple[BrokerProcess, BrokerProcess]:
    return start_broker(stub_upstream, prices=Prices(1, 1)), start_broker(stub_upstream, prices=Prices(2, 2))


@pytest.fixture
def proxy(two_brokers: tuple[BrokerProcess, BrokerProcess], compute: ComputeContracts,
          make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]) -> RunningProxy:
    cheap, fair = two_brokers
    user = make_user(cheap.provider.address)
    compute.deposit_and_fund(user.account, fair.provider.address, 10**15)
    user.acknowledge(compute.service(fair.provider.address))
    return run_proxy(user, [cheap.provider.address, fair.provider.address])


def _served_by(proxy: RunningProxy, **extra: Any) -> str | tuple[int, str]:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.token, max_retries=0, timeout=60)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=extra.pop("model", DEFAULT_MODEL_ID), messages=QUESTION, max_tokens=4,  # type: ignore[arg-type]
            extra_body=extra or None)
    except openai.APIStatusError as exc:
        return exc.status_code, str(exc)
    return raw.headers["zg-provider"]


def test_the_request_chooses_its_providers_by_sort_only_ignore_and_max_price(
        proxy: RunningProxy, two_brokers: tuple[BrokerProcess, BrokerProcess]) -> None:
    cheap, fair = (b.provider.address for b in two_brokers)
    assert _served_by(proxy) == cheap, "by default the cheapest healthy provider"
    assert _served_by(proxy, provider={"sort": "price"}) == cheap
    assert _served_by(proxy, provider={"ignore": [cheap]}) == fair
    assert _served_by(proxy, provider={"only": [fair]}) == fair
    assert _served_by(proxy, provider={"max_price": 1}) == cheap
    assert _served_by(proxy, provider={"sort": "latency", "only": [fair, cheap]}) in (cheap, fair)
    status, message = _served_by(proxy, provider={"max_price": 0})  # type: ignore[misc]
    assert status == 404 and "preferences" in message


def test_models_fall_back_in_order_and_bad_preferences_are_a_clear_400(proxy: RunningProxy) -> None:
    assert isinstance(_served_by(proxy, model="no-such-model", models=[DEFAULT_MODEL_ID]), str)
    status, _ = _served_by(proxy, model="no-such-model", models=["nor-this-one"])  # type: ignore[misc]
    assert status == 404
    for bad in ({"sort": "fastest"}, {"only": "0x1"}, {"max_price": -1}, {"nonsense": 1}):
        answer = httpx.post(proxy.url + "/v1/chat/completions", headers=proxy.headers, timeout=30,
                            json={"model": DEFAULT_MODEL_ID, "messages": QUESTION, "provider": bad})
        assert answer.status_code == 400 and "provider" in answer.json()["error"]["message"], bad
