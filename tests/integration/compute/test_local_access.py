"""``zg compute serve`` answers only its user: not a web page (Origin, content type), not a DNS
rebinding page (Host), not a local process without the install token. Real brokers, the real
model, the proxy behind its guarded edge on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.compute.conftest import BrokerProcess, RunningProxy
from zgos.compute.user.client import ComputeUser
from zgos.compute.user.proxy import Funding
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "Name a colour"}]
BODY = json.dumps({"model": MODEL, "messages": PROMPT, "max_tokens": 2})
NOTHING = {"served": 0, "receipted": 0, "inflight": 0, "requests": 0}


def _chat(proxy: RunningProxy, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", content=BODY, headers=headers, timeout=60)


def _nothing_spent(broker: BrokerProcess, user: ComputeUser, proxy: RunningProxy, balance: int) -> None:
    provider = broker.provider.address
    assert broker.user(user.address) == NOTHING  # no request reached the broker, nothing billed
    assert user.ledger()["sub_accounts"][provider]["receipted"] == 0  # no receipt signed
    assert user.contracts.sub_account(user.address, provider).balance == balance  # no top-up
    assert proxy.proxy.budget.summary()["spent"] == {"hour": 0, "day": 0}


def test_a_cross_origin_text_plain_post_to_the_proxy_is_refused_and_nothing_is_spent(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider, fund=10)  # so low that a request reaching the broker would be topped up
    user.contracts.deposit(user.account, 10**16)
    proxy = run_proxy(user, [provider], Funding(top_up=10**15, max_balance=10**16))
    # What a page at evil.example sends with fetch(..., {mode: "no-cors"}): no preflight needed.
    page = _chat(proxy, {"content-type": "text/plain;charset=UTF-8", "origin": "http://evil.example"})
    assert page.status_code == 403 and "origin" in page.json()["error"]["message"]
    form = _chat(proxy, {"content-type": "application/x-www-form-urlencoded", "origin": "http://evil.example"})
    assert form.status_code == 403
    # Had the page the token, its origin would still be refused; the user's own page (the
    # proxy's origin) must still send JSON.
    assert _chat(proxy, {"content-type": "text/plain", "origin": "http://evil.example", **proxy.headers}
                 ).status_code == 403
    own_page = _chat(proxy, {"content-type": "text/plain", "origin": proxy.url, **proxy.headers})
    assert own_page.status_code == 415 and "application/json" in own_page.json()["error"]["message"]
    _nothing_spent(broker, user, proxy, 10)
    # the same request from the user's program, as JSON with the token, is served and paid
    answer = _chat(proxy, {"content-type": "application/json", **proxy.headers})
    assert answer.status_code == 200 and answer.headers["zg-verified"] == "true"
    assert broker.user(user.address)["requests"] == 1


def test_a_dns_rebinding_host_is_refused(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    balance = user.contracts.sub_account(user.address, provider).balance
    proxy = run_proxy(user, [provider])
    port = proxy.url.rsplit(":", 1)[1]
    # A page at evil.example whose name now resolves to 127.0.0.1 talks to the proxy "same-origin":
    # its requests name evil.example in Host (and in Origin, when there is one).
    for headers in ({"host": f"evil.example:{port}"},
                    {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}):
        chat = _chat(proxy, {"content-type": "application/json", **proxy.headers, **headers})
        assert chat.status_code == 403 and "Host" in chat.json()["error"]["message"]
        models = httpx.get(proxy.url + "/v1/models", headers={**proxy.headers, **headers}, timeout=10)
        assert models.status_code == 403
    _nothing_spent(broker, user, proxy, balance)
    # the loopback names of the bound address are this proxy's own
    for name in ("127.0.0.1", "localhost"):
        own = httpx.get(proxy.url + "/v1/models", headers={**proxy.headers, "host": f"{name}:{port}"}, timeout=10)
        assert own.status_code == 200


def test_the_proxy_refuses_calls_without_the_install_token(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    balance = user.contracts.sub_account(user.address, provider).balance
    proxy = run_proxy(user, [provider], origins=("http://localhost:3000",))
    json_type = {"content-type": "application/json"}
    assert _chat(proxy, json_type).status_code == 401
    assert _chat(proxy, {**json_type, "authorization": "Bearer guessed"}).status_code == 401
    assert _chat(proxy, {**json_type, "authorization": f"Basic {proxy.token}"}).status_code == 401
    # a trusted UI on another origin still needs the token
    assert _chat(proxy, {**json_type, "origin": "http://localhost:3000"}).status_code == 401
    for path in ("/v1/models", "/v1/providers", "/v1/spending"):
        assert httpx.get(proxy.url + path, timeout=10).status_code == 401
    without = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        without.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        raise AssertionError("the proxy answered a client without the token")
    except openai.AuthenticationError as refused:
        assert "install token" in str(refused)
    _nothing_spent(broker, user, proxy, balance)
    # the token, as a bearer token or in X-Zg-Token, from the program or the trusted UI
    assert _chat(proxy, {**json_type, "x-zg-token": proxy.token}).status_code == 200
    assert _chat(proxy, {**json_type, "origin": "http://localhost:3000", **proxy.headers}).status_code == 200


def test_the_stock_openai_client_works_with_the_token_as_api_key(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], devnet_dir: DataDir, gguf: Path
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    account: LocalAccount = user.account
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")},
           "ZGOS_PRIVATE_KEY": account.key.hex()}
    port = free_port()
    log_path = devnet_dir.root / "proxy.log"
    with open(log_path, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "compute", "serve", "--port",
             str(port), "--provider", provider, "--tokenizer", str(gguf)], stdout=log, stderr=subprocess.STDOUT,
            env=env)
    try:
        printed = lambda: re.search(r"install token \(the API key\): (\S+)", log_path.read_text())  # noqa: E731
        assert wait_until(lambda: printed() is not None, 60), log_path.read_text()
        match = printed()
        assert match is not None
        token = match.group(1)
        assert zg(devnet_dir.root, "compute", "token").stdout.strip() == token  # printed again on demand
        assert devnet_dir.token.stat().st_mode & 0o777 == 0o600 and devnet_dir.token.read_text() == token
        url = f"http://127.0.0.1:{port}/v1"
        assert wait_until(lambda: httpx.get(url + "/models", headers={"authorization": f"Bearer {token}"},
                                            timeout=2).status_code == 200, 60), log_path.read_text()
        client = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=60)
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT, max_tokens=3)  # type: ignore[arg-type]
        assert raw.headers["zg-verified"] == "true" and raw.parse().choices[0].message.content
        chunks = list(client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=3, stream=True))  # type: ignore[call-overload]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert wait_until(lambda: broker.user(user.address)["requests"] == 2, 10)
    finally:
        serve.terminate()
        serve.wait(15)
