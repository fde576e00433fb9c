"""Properties of the billing rule and the broker's admission rule."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute import billing as b
from zgos.compute import sse

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
