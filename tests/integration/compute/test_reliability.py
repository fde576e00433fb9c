"""Reliability claims of the compute network, each against real processes and the real model."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.compute.conftest import BrokerProcess
from zgos.compute.spec import vouchers as v
from zgos.compute.user.client import ComputeUser, ProviderError, body_with_defaults
from zgos.runtime.netutil import wait_until

PROMPT = [{"role": "user", "content": "Count"}]


def test_fifty_concurrent_requests_from_five_users_settle_exactly(
    start_broker: Callable[..., BrokerProcess], model_server: str, make_user: Callable[..., ComputeUser]
) -> None:
    broker = start_broker(model_server, "--settle-interval", "3600")  # its own: no other test's users
    provider = broker.provider.address
    users = [make_user(provider) for _ in range(5)]
    compute = users[0].contracts
    earned_before = compute.available(provider)

    def one(user: ComputeUser) -> int:
        return user.chat(provider, PROMPT, max_tokens=1).response.fee

    with ThreadPoolExecutor(max_workers=20) as pool:
        fees = list(pool.map(one, [u for u in users for _ in range(10)]))
    receipts = {u.address: u.ledger()["sub_accounts"][provider]["receipted"] for u in users}
    assert sum(receipts.values()) == sum(fees)
    assert wait_until(lambda: all(broker.user(a)["receipted"] == t for a, t in receipts.items()), 15)
    broker.settle()
    for user in users:
        assert compute.settled(user.address, provider) == receipts[user.address]
    assert compute.available(provider) - earned_before == sum(fees)
    again = broker.settle()  # nothing left: no double settlement
    assert all(compute.settled(u.address, provider) == receipts[u.address] for u in users)
    assert compute.available(provider) - earned_before == sum(fees)
    assert again["paid"] == 0


def test_broker_killed_between_serving_and_settling_settles_once_after_restart(
    start_broker: Callable[..., BrokerProcess], model_server: str, make_user: Callable[..., ComputeUser]
) -> None:
    broker = start_broker(model_server, "--settle-interval", "3600")
    provider = broker.provider.address
    user = make_user(provider)
    fees = [user.chat(provider, PROMPT, max_tokens=2).response.fee for _ in range(3)]
    assert wait_until(lambda: broker.user(user.address)["receipted"] == sum(fees), 10)
    assert user.contracts.settled(user.address, provider) == 0
    broker.kill()  # SIGKILL: no shutdown hook runs
    broker.start()  # settles what the log holds at start
    assert wait_until(lambda: user.contracts.settled(user.address, provider) == sum(fees), 30)
    assert broker.settle()["paid"] == 0  # once: the restart's settlement is not repeated
    assert user.contracts.settled(user.address, provider) == sum(fees)
    assert user.contracts.available(provider) == sum(fees)
    assert broker.user(user.address)["served"] == sum(fees)


def test_broker_settles_before_a_refund_unlocks(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    fee = user.chat(provider, PROMPT, max_tokens=2).response.fee
    assert wait_until(lambda: broker.user(user.address)["receipted"] == fee, 10)
    user.refund(provider)  # the lock time is 24 h; the broker reacts within seconds
    assert wait_until(lambda: user.contracts.settled(user.address, provider) == fee, 30)


def _status_of(user: ComputeUser, provider: str) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        user.chat(provider, PROMPT, max_tokens=2)
    return caught.value


def test_model_server_down_gives_502_and_no_charge(
    start_broker: Callable[..., BrokerProcess], make_user: Callable[..., ComputeUser], refused_url: str,
) -> None:
    broker = start_broker(refused_url)
    user = make_user(broker.provider.address)
    error = _status_of(user, broker.provider.address)
    assert error.status == 502 and "unreachable" in str(error) and "nothing was charged" in str(error)
    assert broker.user(user.address) == {"served": 0, "receipted": 0, "inflight": 0, "requests": 0}


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A model server that accepts connections and never answers (a hung upstream)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def test_model_server_slow_gives_504_and_no_charge(
    start_broker: Callable[..., BrokerProcess], silent_server: str, make_user: Callable[..., ComputeUser]
) -> None:
    broker = start_broker(silent_server, "--timeout", "1")
    user = make_user(broker.provider.address)
    error = _status_of(user, broker.provider.address)
    assert error.status == 504 and "nothing was charged" in str(error)
    stream_body = body_with_defaults({"messages": PROMPT, "max_tokens": 2, "stream": True}, "gemma-3-270m")
    signed = user.sign_request(user.service(broker.provider.address), stream_body)
    answer = httpx.post(broker.url + "/v1/proxy/chat/completions", content=stream_body, headers=signed.headers,
                        timeout=30)
    assert answer.status_code == 504
    assert broker.user(user.address)["served"] == 0
    assert broker.user(user.address)["inflight"] == 0


def test_provider_with_one_request_of_credit_never_serves_two_unreceipted_requests(
    start_broker: Callable[..., BrokerProcess], model_server: str, make_user: Callable[..., ComputeUser]
) -> None:
    from tests.integration.compute.conftest import PRICES
    from zgos.compute.spec.billing import compute_max_fee

    body = body_with_defaults({"messages": PROMPT, "max_tokens": 2}, "gemma-3-270m")
    probe = make_user()
    one_request = compute_max_fee(probe.prompt_tokens(PROMPT), 2, PRICES)
    broker = start_broker(model_server, "--credit", str(one_request))
    provider = broker.provider.address
    user = make_user(provider)
    service = user.service(provider)
    url = broker.url + "/v1/proxy/chat/completions"
    first = user.sign_request(service, body)
    assert httpx.post(url, content=body, headers=first.headers, timeout=60).status_code == 200
    refused = httpx.post(url, content=body, headers=user.sign_request(service, body).headers, timeout=60)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "insufficient-credit"
    served = broker.user(user.address)["served"]
    assert served <= one_request  # all the provider has at risk
    receipt = v.Receipt(user.address, provider, served)
    payload = {"user": user.account.address, "total": served,
               "signature": "0x" + v.sign_message(bytes(user.account.key), user.contracts.domain, receipt).hex()}
    assert httpx.post(broker.url + "/v1/proxy/receipt", json=payload, timeout=10).status_code == 200
    again = httpx.post(url, content=body, headers=user.sign_request(service, body).headers, timeout=60)
    assert again.status_code == 200
