"""The compute services among strangers: a broker that hostile bodies and strangers' keys cannot
crash or make work, an admin API only the install reaches, and a proxy that a trickling or
flooding provider cannot hold. Real brokers, the real model, anvil, servers on 127.0.0.1."""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.adversarial.httpfuzz import FuzzProfile, assert_survives_fuzz
from tests.integration.clirunner import zg
from tests.integration.compute.conftest import PRICES, BrokerProcess, RunningProxy, funded_account
from zgos.chain.client import Chain
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import model_hash
from zgos.compute.provider.wire import HEADER_MAX_FEE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_USER
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import MAX_BODY_BYTES, Prices
from zgos.compute.user.client import ComputeUser, ProviderError, body_with_defaults
from zgos.runtime.addresses import AddressPolicy

MODEL = "gemma-3-270m"
HELLO = [{"role": "user", "content": "Say hi"}]
JSON = {"content-type": "application/json"}


def _signed_headers(compute: ComputeContracts, signer: LocalAccount, provider: str, body: bytes,
                    max_fee: int) -> dict[str, str]:
    """Sign ``body`` as it is, without parsing it (the test process must not parse hostile JSON:
    py_ecc raised its recursion limit too)."""
    request = v.Request(v.normalize_address(signer.address), v.normalize_address(provider),
                        secrets.randbits(64), v.compute_body_hash(body), max_fee)
    signature = v.sign_message(bytes(signer.key), compute.domain, request)
    return {**JSON, HEADER_USER: signer.address, HEADER_NONCE: str(request.nonce), HEADER_MAX_FEE: str(max_fee),
            HEADER_SIGNATURE: "0x" + signature.hex()}


def _chat(broker: BrokerProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(broker.url + "/v1/proxy/chat/completions", content=body, headers=headers, timeout=60)


def test_a_deeply_nested_body_does_not_crash_the_broker(
    start_broker: Callable[..., BrokerProcess], model_server: str, compute: ComputeContracts,
    make_user: Callable[..., ComputeUser],
) -> None:
    broker = start_broker(model_server)  # its own: the test checks that it stays up
    provider = broker.provider.address
    user = make_user(provider)
    # The body that crashed storage, indexer and broker (SIGSEGV in the JSON decoder), on the
    # unauthenticated receipt route: refused by size; a deep one within the size cap, by depth.
    receipt_url = broker.url + "/v1/proxy/receipt"
    assert httpx.post(receipt_url, content=b"[" * 100_000, headers=JSON, timeout=30).status_code == 413
    for deep in (b"[" * 4000, b"[" * 2000 + b"]" * 2000, b'{"user":' * 500):
        refused = httpx.post(receipt_url, content=deep, headers=JSON, timeout=30)
        assert refused.status_code == 400 and "nested deeper" in refused.json()["error"]["message"]
    # The chat route takes 1 MiB: half a million levels, unsigned and then validly signed by a
    # funded user (the only way past the signature and balance checks to the parser).
    deep_chat = b'{"model":"gemma-3-270m","max_tokens":2,"messages":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    assert len(deep_chat) <= MAX_BODY_BYTES
    assert _chat(broker, deep_chat, JSON).status_code == 401
    refused = _chat(broker, deep_chat, _signed_headers(compute, user.account, provider, deep_chat, 10**6))
    assert refused.status_code == 400 and "nested deeper" in refused.json()["error"]["message"]
    admin = httpx.post(broker.admin_url + "/v1/settle", content=b"[" * 100_000,
                       headers={**JSON, **broker.admin_headers}, timeout=30)
    assert admin.status_code == 413
    # still up, nothing held, and serving
    assert broker.process is not None and broker.process.poll() is None
    assert httpx.get(broker.url + "/health", timeout=10).status_code == 200
    assert broker.user(user.address)["inflight"] == 0
    assert user.chat(provider, HELLO, max_tokens=2).response.fee > 0
    assert "Traceback" not in broker.log_path.read_text()


def test_an_unfunded_key_gets_no_tokenization(
    broker: BrokerProcess, compute: ComputeContracts, make_user: Callable[..., ComputeUser]
) -> None:
    provider = broker.provider.address
    tokenized = int(broker.status()["prompts_tokenized"])  # type: ignore[call-overload]
    prompt = "word " * ((MAX_BODY_BYTES - 1024) // 5)  # a 1 MiB prompt
    body = body_with_defaults({"messages": [{"role": "user", "content": prompt}], "max_tokens": 2}, MODEL)
    assert MAX_BODY_BYTES - 1024 < len(body) <= MAX_BODY_BYTES
    stranger = Account.create()  # a fresh key: never funded, never acknowledged anything
    poor = make_user(provider, fund=10)  # acknowledged, 10 neuron
    started = time.monotonic()
    refused = _chat(broker, body, _signed_headers(compute, stranger, provider, body, 10**15))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "not-acknowledged"
    refused = _chat(broker, body, _signed_headers(compute, poor.account, provider, body, 10**15))
    assert refused.status_code == 402 and refused.json()["error"]["type"] == "insufficient-balance"
    elapsed = time.monotonic() - started
    assert int(broker.status()["prompts_tokenized"]) == tokenized  # type: ignore[call-overload]
    # A funded user: a replayed nonce and a prompt past the bound are refused untokenized too.
    funded = make_user(provider)
    small = body_with_defaults({"messages": HELLO, "max_tokens": 2}, MODEL)
    signed = funded.sign_request(funded.service(provider), small)
    assert _chat(broker, small, signed.headers).status_code == 200
    assert int(broker.status()["prompts_tokenized"]) == tokenized + 1  # type: ignore[call-overload]
    assert _chat(broker, small, signed.headers).status_code == 409
    too_long = _chat(broker, body, _signed_headers(compute, funded.account, provider, body, 10**6))
    assert too_long.status_code == 413 and too_long.json()["error"]["type"] == "prompt-too-large"
    assert int(broker.status()["prompts_tokenized"]) == tokenized + 1  # type: ignore[call-overload]
    assert broker.user(funded.address)["inflight"] == 0 and broker.user(poor.address)["inflight"] == 0
    assert elapsed < 30, f"two refusals took {elapsed:.1f} s"


def test_the_broker_admin_api_needs_the_install_token(broker: BrokerProcess, tmp_path: Path) -> None:
    status = broker.admin_url + "/v1/status"
    port = broker.admin_url.rsplit(":", 1)[1]
    assert httpx.get(status, timeout=10).status_code == 401
    assert httpx.get(status, headers={"authorization": "Bearer guessed"}, timeout=10).status_code == 401
    with_token = broker.admin_headers
    assert httpx.get(status, headers={**with_token, "host": f"evil.example:{port}"}, timeout=10).status_code == 403
    assert httpx.get(status, headers={**with_token, "origin": "http://evil.example"}, timeout=10).status_code == 403
    settle = httpx.post(broker.admin_url + "/v1/settle", content=b"{}",
                        headers={**with_token, "content-type": "text/plain"}, timeout=10)
    assert settle.status_code == 415
    assert httpx.get(status, headers=with_token, timeout=30).json()["provider"] == broker.provider.address.lower()
    # `zg compute provider status` reads the token of its data dir: the broker's works ...
    shown = zg(broker.data_dir.root, "compute", "provider", "status", "--admin-url", broker.admin_url)
    assert shown.returncode == 0 and re.search(r"requests\s+│", shown.stdout), shown.stdout + shown.stderr
    # ... another install's is refused, with a message, not a traceback
    other = tmp_path / "other"
    zg(other, "compute", "token")
    refused = zg(other, "compute", "provider", "status", "--admin-url", broker.admin_url)
    assert refused.returncode == 1 and "refused this install's token" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


# --- a hostile provider ------------------------------------------------------------------


@contextmanager
def hostile_provider(mode: str) -> Iterator[tuple[str, list[int]]]:
    """An HTTP server that answers every request with 200 and then ``trickle``s (a byte every
    0.2 s) or ``flood``s (64 KiB chunks, forever). Yields its URL and a request counter."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    served = [0]

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                while length and len(body) < int(length[1]):
                    body += conn.recv(65536)
                served[0] += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                while not stop.is_set():
                    if mode == "trickle":
                        conn.sendall(b"1\r\n \r\n")
                        time.sleep(0.2)
                    else:
                        conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", served
    finally:
        stop.set()
        thread.join(5)
        listener.close()


DEADLINE_S = 2.0


def test_a_provider_that_trickles_or_sends_an_endless_body_cannot_hold_the_proxy(
    broker: BrokerProcess, chain: Chain, compute: ComputeContracts, gguf: Path,
    make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy],
) -> None:
    honest = broker.provider.address
    for mode, reason in (("trickle", "within 2 s"), ("flood", "larger than")):
        with hostile_provider(mode) as (url, served):
            hostile = funded_account(chain)  # registered cheapest, so the router tries it first
            compute.register(hostile, url=url, model=MODEL, model_hash=model_hash(gguf),
                             prices=Prices(PRICES.input_price - 1, PRICES.output_price), signer=hostile.address)
            user = make_user(honest)
            proxy = run_proxy(user, [hostile.address, honest], timeout_s=DEADLINE_S)
            body = {"model": MODEL, "messages": HELLO, "max_tokens": 2}
            started = time.monotonic()
            answer = httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=proxy.headers, timeout=120)
            elapsed = time.monotonic() - started
            assert answer.status_code == 200 and answer.headers["zg-provider"] == honest, answer.text
            assert served[0] == 1 and elapsed < 60, elapsed
            health = proxy.proxy.router.health[hostile.address]
            assert health.avoided_until > time.monotonic() and reason in health.last_error, health
            # backed off: the next request does not call it at all
            assert httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=proxy.headers,
                              timeout=120).status_code == 200
            assert served[0] == 1
            # alone, and streaming: the stream is cut at the deadline or the cap, not held
            alone = run_proxy(make_user(honest), [hostile.address], timeout_s=DEADLINE_S)
            started = time.monotonic()
            try:
                with httpx.stream("POST", alone.url + "/v1/chat/completions", json={**body, "stream": True},
                                  headers=alone.headers, timeout=60) as streamed:
                    received = sum(len(chunk) for chunk in streamed.iter_raw())
                assert received < 64 * 1024  # whatever arrived, the proxy did not pass the flood on
            except httpx.HTTPError:
                pass  # the proxy broke the stream off
            assert time.monotonic() - started < DEADLINE_S + 10
            assert alone.proxy.router.health[hostile.address].avoided_until > 0


def test_the_proxy_calls_no_address_its_policy_refuses(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    honest = broker.provider.address  # announced at 127.0.0.1: fine on a devnet, not on a public network
    user = make_user(honest)
    proxy = run_proxy(user, [honest], address_policy=AddressPolicy())  # global addresses only
    answer = httpx.post(proxy.url + "/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "max_tokens": 2},
                        headers=proxy.headers, timeout=60)
    assert answer.status_code == 502 and "loopback address" in answer.json()["error"]["message"], answer.text
    assert broker.user(user.address)["requests"] == 0
    assert "loopback address" in proxy.proxy.router.health[honest].last_error


def test_the_cli_client_calls_no_address_its_policy_refuses(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    honest = broker.provider.address
    user = make_user(honest)
    user.policy = AddressPolicy()  # global addresses only, as on a public network
    with pytest.raises(ProviderError, match="loopback address"):
        user.chat(honest, HELLO, max_tokens=2)
    assert broker.user(user.address)["requests"] == 0


# --- the fuzz harness ------------------------------------------------------------------------


def test_no_request_crashes_or_hangs_the_broker(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    before = broker.log_path.read_text(errors="replace").count("Traceback")
    hashes = ("0x" + "ab" * 32,)
    assert_survives_fuzz(broker.url, FuzzProfile(
        host=broker.url.removeprefix("http://"), rpc_path=None,
        json_posts=("/v1/proxy/chat/completions", "/v1/proxy/receipt"),
        get_paths=("/health", "/v1/proxy/models", "/v1/proxy/attestation", "/v1/proxy/signature/{h}",
                   "/v1/proxy/signature/{s}", "/{s}"),
        max_body_bytes=MAX_BODY_BYTES, numbers=(0, 1, 2**64), hashes=hashes), 2)
    assert_survives_fuzz(broker.admin_url, FuzzProfile(
        host=broker.admin_url.removeprefix("http://"), rpc_path=None,
        get_paths=("/v1/status", "/v1/user/{h}", "/v1/user/{s}", "/{s}"), hashes=hashes,
        headers=tuple(broker.admin_headers.items())), 3)  # the admin surface, with its token
    assert broker.log_path.read_text(errors="replace").count("Traceback") == before
    user = make_user(broker.provider.address)  # still serving, and billing, honest users
    assert user.chat(broker.provider.address, HELLO, max_tokens=2).receipt.total > 0


def test_no_request_crashes_or_hangs_the_proxy(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], run_proxy: Callable[..., RunningProxy]
) -> None:
    user = make_user(broker.provider.address)
    proxy = run_proxy(user, [broker.provider.address])
    assert_survives_fuzz(proxy.url, FuzzProfile(
        host=proxy.url.removeprefix("http://"), rpc_path=None, json_posts=("/v1/chat/completions", "/v1/verify"),
        get_paths=("/v1/models", "/v1/providers", "/v1/spending", "/{s}"), max_body_bytes=MAX_BODY_BYTES,
        hashes=("0x" + "ab" * 32,), headers=tuple(proxy.headers.items())), 4)
    assert broker.user(user.address)["requests"] == 0  # no fuzzed body was paid for
    answer = httpx.post(proxy.url + "/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "max_tokens": 2},
                        headers=proxy.headers, timeout=120)
    assert answer.status_code == 200 and answer.headers["zg-verified"] == "true", answer.text
