"""Properties of the billing rule and the broker's admission rule."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec import billing as b
from zgos.compute.spec import sse

PRICES = st.builds(b.Prices, input_price=st.integers(0, 10**15), output_price=st.integers(0, 10**15))
COUNTS = st.integers(0, 10_000)


@given(prices=PRICES, prompt=COUNTS, completion=COUNTS, max_tokens=st.integers(1, b.MAX_TOKENS_LIMIT))
def test_fee_never_exceeds_max_fee(prices: b.Prices, prompt: int, completion: int, max_tokens: int) -> None:
    usage = b.compute_usage(prompt, completion, max_tokens)
    assert usage.output_tokens <= max_tokens
    assert b.compute_fee(usage, prices) <= b.compute_max_fee(prompt, max_tokens, prices)


EXPOSURES = st.builds(
    b.Exposure, spendable=st.integers(0, 10**6), settled=st.integers(0, 10**6),
    served=st.integers(0, 10**6), receipted=st.integers(0, 10**6), inflight=st.integers(0, 10**6),
)


@given(exposure=EXPOSURES, max_fee=st.integers(0, 10**6), credit=st.integers(0, 10**6))
def test_admitted_request_keeps_claims_within_balance_and_credit(
    exposure: b.Exposure, max_fee: int, credit: int
) -> None:
    try:
        b.validate_admission(exposure, max_fee, credit)
    except b.AdmissionRefused as refused:
        assert refused.reason in ("balance", "credit")
        return
    assert max(0, exposure.served - exposure.settled) + exposure.inflight + max_fee <= exposure.spendable
    assert max(0, exposure.served - exposure.receipted) + exposure.inflight + max_fee <= credit


def _body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


@pytest.mark.parametrize("body", [
    b"not json", b"[]", _body(model=""), _body(messages=[]), _body(messages=[{"role": "x", "content": "a"}]),
    _body(max_tokens=None), _body(max_tokens=0), _body(max_tokens=True), _body(max_tokens=10**6),
    _body(stream="yes"), b"{" + b" " * b.MAX_BODY_BYTES + b"}",
])
def test_unpriceable_chat_request_is_refused(body: bytes) -> None:
    with pytest.raises(b.InvalidChatRequest):
        b.parse_chat_request(body)


def test_chat_request_fields_are_parsed() -> None:
    request = b.parse_chat_request(_body(stream=True))
    assert (request.model, request.max_tokens, request.stream) == ("m", 4, True)


@given(parts=st.lists(st.text(max_size=10), max_size=8), cut=st.integers(1, 50))
def test_stream_text_is_the_concatenated_deltas_however_bytes_are_cut(parts: list[str], cut: int) -> None:
    stream = b"".join(
        sse.format_event(json.dumps({"choices": [{"delta": {"content": p}}]}).encode()) for p in parts
    ) + sse.format_event(sse.DONE_DATA) + sse.format_signature_event('{"x":1}')
    splitter = sse.EventSplitter()
    events = []
    for i in range(0, len(stream), cut):
        events += splitter.feed(stream[i:i + cut])
    assert sse.stream_text(events) == "".join(parts)
    assert sse.is_signature_event(events[-1]) and sse.is_done_event(events[-2])
    assert b"".join(events) == stream


def _chunk(**delta: object) -> bytes:
    return sse.format_event(json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode())


def _call(arguments: str) -> dict[str, object]:
    return {"index": 0, "id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


@given(content=st.lists(st.text(max_size=6), max_size=5), reasoning=st.lists(st.text(max_size=6), max_size=5),
       arguments=st.lists(st.text(max_size=6), max_size=5), cut=st.integers(1, 40))
def test_every_generated_piece_of_a_stream_is_billed_however_bytes_are_cut(
    content: list[str], reasoning: list[str], arguments: list[str], cut: int
) -> None:
    stream = _chunk(role="assistant", content=None, tool_calls=None)
    stream += b"".join(_chunk(reasoning_content=r) for r in reasoning)
    stream += b"".join(_chunk(content=c) for c in content)
    # llama-cpp-python sends each tool-call piece twice: as tool_calls and as legacy function_call
    stream += b"".join(_chunk(tool_calls=[_call(a)], function_call={"name": "get_weather", "arguments": a})
                       for a in arguments)
    stream += sse.format_event(sse.DONE_DATA) + _chunk(content="after the end is not billed")
    splitter = sse.EventSplitter()
    events = []
    for i in range(0, len(stream), cut):
        events += splitter.feed(stream[i:i + cut])
    expected = [piece for piece in ("".join(reasoning), "".join(content), "".join(arguments)) if piece]
    assert sorted(sse.stream_output(events)) == sorted(expected)


def test_a_forced_tool_call_body_is_billed_for_its_arguments() -> None:
    # a non-streamed forced tool call as llama-cpp-python's server returns it
    body = (b'{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"call_0","type":"function",'
            b'"function":{"name":"get_weather","arguments":"{ \\"city\\":\\"Paris\\"}"}}],"role":"assistant",'
            b'"function_call":{"name":"get_weather","arguments":"{ \\"city\\":\\"Paris\\"}"}},'
            b'"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":16,"completion_tokens":8}}')
    assert sse.body_output(body) == ['{ "city":"Paris"}']
    assert sse.body_text(body) == ""  # shown text: none; billed: the arguments
    reasoning = b'{"choices":[{"message":{"content":"4","reasoning_content":"2+2 is 4"}}]}'
    assert sse.body_output(reasoning) == ["4", "2+2 is 4"]


def test_output_tokens_are_counted_piece_by_piece() -> None:
    assert b.count_output_tokens(["ab", "cde"], len) == 5
    with pytest.raises(TypeError):
        b.count_output_tokens("abcde", len)


def test_a_request_for_several_choices_is_refused() -> None:
    with pytest.raises(b.InvalidChatRequest):
        b.parse_chat_request(_body(n=2))
    assert b.parse_chat_request(_body(n=1)).max_tokens == 4


# --- agents (issue 16) ------------------------------------------------------------------------


def _agent_body(agent: object, messages: list[dict[str, str]] | None = None) -> bytes:
    return json.dumps({"model": "m", "max_tokens": 4, "zg_agent": agent,
                       "messages": messages or [{"role": "user", "content": "hi"}]}).encode()


def test_an_agent_request_names_a_token_and_carries_no_system_message() -> None:
    assert b.parse_chat_request(_agent_body(7)).agent == 7
    for bad in (-1, True, "7", 1.5):
        with pytest.raises(b.InvalidChatRequest):
            b.parse_chat_request(_agent_body(bad))
    with pytest.raises(b.InvalidChatRequest, match="no system message"):
        b.parse_chat_request(_agent_body(7, [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]))


@given(own=st.integers(0, 10_000), billed=st.integers(0, 20_000))
def test_an_agent_call_is_billable_between_the_users_count_and_the_cap_above_it(own: int, billed: int) -> None:
    from zgos.compute.spec.billing import (
        AGENT_PROMPT_MAX_TOKENS,
        ChatRequest,
        compute_prompt_budget,
        is_agent_input_billable,
    )

    assert is_agent_input_billable(billed, own) == (own <= billed <= own + AGENT_PROMPT_MAX_TOKENS)
    chat = ChatRequest("m", [], 4, False, agent=1)
    assert compute_prompt_budget(own, chat) == own + AGENT_PROMPT_MAX_TOKENS
    assert compute_prompt_budget(own, ChatRequest("m", [], 4, False)) == own
