"""Billing follows delivery: every token a broker forwards counts toward the user's exposure,
however the connection ends; a user who hangs up never gets past the credit limit; a forced
tool call is billed; the model stops generating when the client leaves.

Streams are cut with a raw socket at a chosen byte of the response body (h11 parses the
chunked framing), against a real broker in front of the streaming stub upstream
(``bench.compute_servers``) or the real model."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import h11
import httpx
import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.compute_servers import STALL_FIELD
from tests.integration.compute.conftest import PRICES, BrokerProcess, RunningProxy, funded_account
from zgos.chain.client import Chain
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import model_hash
from zgos.compute.spec import sse
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import (
    compute_fee,
    compute_max_fee,
    compute_usage,
    count_output_tokens,
)
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser, body_with_defaults
from zgos.compute.user.verification import ResponseRejected
from zgos.runtime.netutil import wait_until

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
STUB_TOKENS = 40
HANG_UP_BEFORE_THE_ANSWER = -1


def stream_and_hang_up(broker_url: str, body: bytes, headers: dict[str, str], cut: int | None) -> tuple[int, bytes]:
    """POST a streamed request and close the socket once ``cut`` body bytes arrived (all of
    them if None; right after sending if ``HANG_UP_BEFORE_THE_ANSWER``). Returns the status
    (0 if none arrived) and the body bytes delivered (at most ``cut``)."""
    address = urlsplit(broker_url)
    assert address.hostname is not None and address.port is not None
    connection = h11.Connection(h11.CLIENT)
    request = h11.Request(method="POST", target="/v1/proxy/chat/completions", headers=[
        ("host", address.netloc), ("content-length", str(len(body))), *headers.items()])
    status, received = 0, bytearray()
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(connection.send(request) + connection.send(h11.Data(data=body))  # type: ignore[operator]
                     + connection.send(h11.EndOfMessage()))
        while cut != HANG_UP_BEFORE_THE_ANSWER and (cut is None or len(received) < cut or status == 0):
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    return status, bytes(received if cut is None else received[:max(cut, 0)])


BILLING_GRACE_S = 5.0  # how long a request cut before its answer may take to reach the broker


def _settled_request(broker: BrokerProcess, user: str, before: dict[str, int]) -> int:
    """Wait until the user's last request has ended; return what it added to ``served``.

    A request cut right after sending may reach the broker after the cut (on a loaded machine,
    later than ``inflight`` is first read): wait for it to be billed (``requests`` counts the
    billed ones), up to ``BILLING_GRACE_S``, since an unbilled request leaves no other trace."""
    wait_until(lambda: broker.user(user)["requests"] > before["requests"], BILLING_GRACE_S)
    assert wait_until(lambda: broker.user(user)["inflight"] == 0, 30), broker.user(user)
    return broker.user(user)["served"] - before["served"]


def _signed(broker: BrokerProcess, domain: v.Domain, request_hash: bytes) -> v.Response | None:
    """The broker's signed Response for a request (checked), or None if it billed nothing."""
    answer = httpx.get(f"{broker.url}/v1/proxy/signature/0x{request_hash.hex()}", timeout=10)
    if answer.status_code == 404:
        return None
    response, signature = v.decode_response(answer.text)
    assert v.recover_message(domain, response, signature) == broker.provider.address.lower()
    return response


def _delivered_output_tokens(tokens: TokenCounter, delivered: bytes) -> int:
    events = sse.EventSplitter().feed(delivered)
    return count_output_tokens(sse.stream_output(events), tokens.count_completion)


def test_a_client_that_hangs_up_at_any_point_of_a_stream_has_every_delivered_token_counted(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, make_user: Callable[..., ComputeUser],
    tokens: TokenCounter,
) -> None:
    broker = start_broker(stub_upstream, "--settle-interval", "3600")
    user = make_user(broker.provider.address)
    service = user.service(broker.provider.address)
    body = body_with_defaults({"messages": PROMPT, "max_tokens": STUB_TOKENS, "stream": True}, MODEL)
    prompt_tokens = tokens.count_prompt(PROMPT)

    # one whole stream: where its stages begin and end
    status, whole = stream_and_hang_up(broker.url, body, user.sign_request(service, body).headers, None)
    assert status == 200
    first_event = whole.index(sse.EVENT_SEPARATOR) + len(sse.EVENT_SEPARATOR)
    done = whole.index(b"data: [DONE]")
    signature = whole.index(b"event: zg-signature")
    rng = random.Random(1307)
    stages = {
        "before the answer": lambda: HANG_UP_BEFORE_THE_ANSWER,
        "after the headers": lambda: 0,
        "inside the first events": lambda: rng.randrange(1, first_event + 40),
        "mid-stream": lambda: rng.randrange(first_event, done),
        "at an event boundary": lambda: whole.index(sse.EVENT_SEPARATOR, rng.randrange(first_event, done)) + 2,
        "after [DONE], before the signature": lambda: rng.randrange(done, signature + 1),
        "inside the signature event": lambda: rng.randrange(signature + 1, len(whole)),
    }
    plan = list(stages) * 3
    rng.shuffle(plan)
    for stage in plan[:20]:
        cut = stages[stage]()
        signed = user.sign_request(service, body)
        before = broker.user(user.address)
        status, delivered = stream_and_hang_up(broker.url, body, signed.headers, cut)
        billed = _settled_request(broker, user.address, before)
        response = _signed(broker, user.contracts.domain, signed.request_hash)
        trial = f"hung up {stage} (byte {cut} of {len(whole)}): billed {billed}"
        if cut == HANG_UP_BEFORE_THE_ANSWER:
            assert response is None or response.fee == billed, trial
            continue
        assert status == 200 and response is not None, trial
        delivered_tokens = _delivered_output_tokens(tokens, delivered)
        # every delivered token is billed (and the prompt); the broker bills what it signed
        assert response.output_tokens >= delivered_tokens, trial
        assert response.input_tokens == prompt_tokens, trial
        assert billed == response.fee >= compute_fee(compute_usage(prompt_tokens, delivered_tokens, STUB_TOKENS),
                                                      PRICES), trial
        assert billed <= signed.request.max_fee, trial
    book = broker.user(user.address)
    assert book["inflight"] == 0 and book["requests"] == 21  # no reservation left behind


def test_a_user_cannot_get_past_the_credit_limit_by_disconnecting(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, make_user: Callable[..., ComputeUser],
    tokens: TokenCounter,
) -> None:
    max_fee = compute_max_fee(tokens.count_prompt(PROMPT), STUB_TOKENS, PRICES)
    credit = 3 * max_fee
    broker = start_broker(stub_upstream, "--credit", str(credit), "--settle-interval", "3600")
    user = make_user(broker.provider.address)
    service = user.service(broker.provider.address)
    body = body_with_defaults({"messages": PROMPT, "max_tokens": STUB_TOKENS, "stream": True}, MODEL)
    statuses, received_tokens = [], 0
    for _ in range(60):  # each time: read the first few tokens, then hang up before the signature
        signed = user.sign_request(service, body)
        before = broker.user(user.address)
        status, delivered = stream_and_hang_up(broker.url, body, signed.headers, 1500)
        statuses.append(status)
        if status == 429:
            break
        assert status == 200
        received_tokens += _delivered_output_tokens(tokens, delivered)
        _settled_request(broker, user.address, before)
        book = broker.user(user.address)
        assert book["served"] - book["receipted"] <= credit  # at every moment
    assert statuses[-1] == 429, f"never refused after {len(statuses)} hang-ups"
    book = broker.user(user.address)
    assert book["receipted"] == 0 and credit - max_fee < book["served"] <= credit
    assert received_tokens > 0
    # signing a receipt for what was served restores the credit: the limit is about receipts
    receipt = v.Receipt(user.address, broker.provider.address.lower(), book["served"])
    payload = {"user": user.account.address, "total": book["served"],
               "signature": "0x" + v.sign_message(bytes(user.account.key), user.contracts.domain, receipt).hex()}
    assert httpx.post(broker.url + "/v1/proxy/receipt", json=payload, timeout=10).status_code == 200
    status, _ = stream_and_hang_up(broker.url, body, user.sign_request(service, body).headers, None)
    assert status == 200


WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOL_REQUEST = {
    "messages": WEATHER,
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
}


def test_a_forced_tool_call_is_billed_for_its_output_tokens(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser], tokens: TokenCounter
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    service = user.service(provider)
    for stream in (False, True):
        body = body_with_defaults({**TOOL_REQUEST, "max_tokens": 40, "stream": stream}, MODEL)
        signed = user.sign_request(service, body)
        with httpx.stream("POST", broker.url + "/v1/proxy/chat/completions", content=body, headers=signed.headers,
                          timeout=120) as answer:
            assert answer.status_code == 200
            raw = answer.read()
        if stream:
            mark = raw.rfind(b"event: zg-signature")
            events = sse.EventSplitter().feed(raw[:mark])
            output, received = sse.stream_output(events), raw[:mark]
            signed_json = sse.event_fields(raw[mark:])[1].decode()
            upstream_tokens = None
        else:
            output, received = sse.body_output(raw), raw
            signed_json = answer.headers["zg-response"]
            message = json.loads(raw)["choices"][0]["message"]
            assert message["tool_calls"][0]["function"]["name"] == "get_weather" and not message["content"]
            upstream_tokens = json.loads(raw)["usage"]["completion_tokens"]
        arguments = "".join(output)
        assert "Paris" in arguments or "city" in arguments, arguments
        response = user.verify(service, signed, received, signed_json, output)  # the user agrees
        assert response.output_tokens == tokens.count_completion(arguments) > 0
        if upstream_tokens is not None:  # never above what the model server says it generated
            assert response.output_tokens <= upstream_tokens
        assert response.fee == compute_fee(compute_usage(tokens.count_prompt(WEATHER),
                                                         response.output_tokens, 40), PRICES)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _model_pid(model_server: str) -> int:
    port = urlsplit(model_server).port
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"llama_cpp.server" in argv and str(port).encode() in argv and int(pid) != os.getpid():
            return int(pid)
    raise AssertionError(f"no llama_cpp.server process on port {port}")


def _cpu_over(pid: int, seconds: float) -> float:
    """CPU seconds ``pid`` uses in the next ``seconds``."""
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return _cpu_seconds(pid) - before


def test_generation_stops_when_the_client_leaves(
    broker: BrokerProcess, model_server: str, make_user: Callable[..., ComputeUser],
    run_proxy: Callable[..., RunningProxy], tokens: TokenCounter,
) -> None:
    """An app streaming through ``zg compute serve`` hangs up a long answer: the proxy drops
    the broker's connection, the broker drops the model server's, the model stops (its CPU
    falls to idle), the broker bills what it forwarded and the proxy pays what it received."""
    provider = broker.provider.address
    user = make_user(provider)
    proxy = run_proxy(user, [provider])
    model = _model_pid(model_server)
    served_before = broker.user(user.address)["served"]
    long_answer = {"model": MODEL, "messages": [{"role": "user", "content": "Tell a very long story."}],
                   "max_tokens": 2000, "min_tokens": 2000, "stream": True}  # llama-cpp: no early end
    app_received = b""
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=long_answer, headers=proxy.headers,
                      timeout=120) as answer:
        assert answer.status_code == 200
        chunks = cast(Generator[bytes, None, None], answer.iter_raw())
        while app_received.count(b'"content": "') < 5:
            app_received += next(chunks)
        start, deadline = _cpu_seconds(model), time.monotonic() + 60
        while _cpu_seconds(model) - start < 0.3 and time.monotonic() < deadline:
            app_received += next(chunks)  # the model generates while the app reads
        busy = _cpu_seconds(model) - start
        chunks.close()  # the app hangs up: httpx drops the connection
    # the app has hung up
    assert wait_until(lambda: broker.user(user.address)["inflight"] == 0, 30)
    idle = _cpu_over(model, 2.0)
    assert busy >= 0.3 and idle < 0.1, f"model CPU {busy:.2f}s while streaming, {idle:.2f}s in 2 s after the hang-up"
    billed = broker.user(user.address)["served"] - served_before
    prompt_tokens = tokens.count_prompt(long_answer["messages"])  # type: ignore[arg-type]
    assert billed < compute_fee(compute_usage(prompt_tokens, 1000, 2000), PRICES)  # a fraction of the answer
    # the proxy paid for what it received: at least what reached the app, never more than billed
    app_tokens = _delivered_output_tokens(tokens, app_received)
    assert wait_until(lambda: broker.user(user.address)["receipted"] > 0, 15)
    paid = broker.user(user.address)["receipted"]
    assert compute_fee(compute_usage(prompt_tokens, app_tokens, 2000), PRICES) <= paid <= billed


def test_a_provider_never_gets_a_receipt_for_more_than_it_delivered(
    chain: Chain, compute: ComputeContracts, make_user: Callable[..., ComputeUser], tokens: TokenCounter, gguf: Path,
) -> None:
    """A stream cut after three tokens, and a provider signing a partial Response that claims
    the whole answer: the user's client pays for the three tokens it received, never more."""
    provider = funded_account(chain)
    compute.register(provider, url="http://127.0.0.1:1", model=MODEL, model_hash=model_hash(gguf), prices=PRICES,
                     signer=provider.address)
    user = make_user(provider.address)
    service = user.service(provider.address)
    body = body_with_defaults({"messages": PROMPT, "max_tokens": 64, "stream": True}, MODEL)
    signed = user.sign_request(service, body)
    received = [" Paris", " is", " the"]
    prompt_tokens = tokens.count_prompt(PROMPT)
    for claimed in (64, 3, 1):  # more than delivered, exactly, less
        usage = compute_usage(prompt_tokens, claimed, 64)
        response = v.Response(signed.request_hash, b"\x00" * 32, MODEL, model_hash(gguf), usage.input_tokens,
                              usage.output_tokens, compute_fee(usage, PRICES))
        signed_response = v.encode_response(response, v.sign_message(bytes(provider.key), compute.domain, response))
        _, amount = user.verify_partial(service, signed, signed_response, ["".join(received)])
        delivered = compute_fee(compute_usage(prompt_tokens, tokens.count_completion("".join(received)), 64), PRICES)
        assert amount == min(response.fee, delivered)
    forged = v.encode_response(response, v.sign_message(bytes(Account.create().key), compute.domain, response))
    with pytest.raises(ResponseRejected):  # only the registered signer's claim is paid at all
        user.verify_partial(service, signed, forged, received)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(["a", " ", "é", "🙂", "<start_of_turn>", "\n", "Paris", "{", '"', "的"])
                      | st.text(max_size=4), max_size=30), add_bos=st.booleans(), special=st.booleans())
def test_token_counts_are_the_model_tokenizers(tokens: TokenCounter, pieces: list[str], add_bos: bool,
                                               special: bool) -> None:
    """The counting fast path (no token buffer) agrees with llama.cpp's tokenizer."""
    data = "".join(pieces).encode()
    assert tokens._count(data, add_bos=add_bos, special=special) == len(
        tokens._llama.tokenize(data, add_bos=add_bos, special=special))


def test_a_stream_cut_by_the_upstream_timeout_is_billed_for_what_was_delivered(
    start_broker: Callable[..., BrokerProcess], stub_upstream: str, make_user: Callable[..., ComputeUser],
    tokens: TokenCounter,
) -> None:
    """The model server goes silent after 7 tokens: after the broker's timeout the client holds
    the 7 tokens and a signed Response for exactly them, and that is what the user owes."""
    broker = start_broker(stub_upstream, "--timeout", "1", "--settle-interval", "3600")
    user = make_user(broker.provider.address)
    service = user.service(broker.provider.address)
    body = body_with_defaults({"messages": PROMPT, "max_tokens": STUB_TOKENS, "stream": True,
                               STALL_FIELD: 7}, MODEL)
    signed = user.sign_request(service, body)
    before = broker.user(user.address)
    status, raw = stream_and_hang_up(broker.url, body, signed.headers, None)
    assert status == 200 and b"[DONE]" not in raw
    mark = raw.rfind(b"event: zg-signature")
    events = sse.EventSplitter().feed(raw[:mark])
    output = sse.stream_output(events)
    response = user.verify(service, signed, raw[:mark], sse.event_fields(raw[mark:])[1].decode(), output)
    assert response.output_tokens == count_output_tokens(output, tokens.count_completion) == 7
    assert _settled_request(broker, user.address, before) == response.fee  # billed: exactly what was delivered
