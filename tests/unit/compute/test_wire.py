"""The compute edges' models: what the broker, the user's proxy and the fine-tuning API accept
and answer, checked once at the edge."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.provider.wire import (
    BadBody,
    BrokerStatus,
    ModelList,
    ProviderModelCard,
    SettlementRound,
    SignedReceipt,
    decode_body,
)
from zgos.compute.user.wire import ChatCall, VerifyCall

USER = "0x" + "ab" * 20


@given(total=st.integers(min_value=0, max_value=2**256 - 1), signature=st.binary(min_size=65, max_size=65))
def test_a_receipt_reads_back_what_the_user_sent(total: int, signature: bytes) -> None:
    sent = SignedReceipt(user=USER, total=total, signature=signature).model_dump(mode="json")
    assert sent["signature"] == "0x" + signature.hex()
    assert decode_body(SignedReceipt, json.dumps(sent).encode()) == SignedReceipt(
        user=USER, total=total, signature=signature)


@pytest.mark.parametrize("body", [
    b"not json", b"[" * 200 + b"]" * 200, b"[]", b'{"user": "x", "total": 1}',
    b'{"user": 7, "total": 1, "signature": "0x00"}', b'{"user": "x", "total": "lots", "signature": "0x00"}',
    b'{"user": "x", "total": 1, "signature": "0x00"}', b'{"user": "x", "total": 1, "signature": 65}',
])
def test_a_malformed_receipt_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(BadBody) as refused:
        decode_body(SignedReceipt, body)
    assert str(refused.value)


def test_the_status_before_any_settlement_says_an_empty_object() -> None:
    status = BrokerStatus(provider=USER, signer=USER, model="m", requests=0, served=0, receipted=0, settled=0,
                          unsettled=0, balance=10**30, users=0, prompts_tokenized=0, last_settlement=None, pid=1)
    answered = status.model_dump(mode="json")
    assert answered["last_settlement"] == {} and answered["balance"] == 10**30
    assert BrokerStatus.model_validate(answered) == status
    round_ = SettlementRound(users=1, settled=1, paid=5, txs=["0x01"], tx="0x01", gas=9, skipped=[], failed=[])
    settled = status.model_copy(update={"last_settlement": round_}).model_dump(mode="json")
    assert BrokerStatus.model_validate(settled).last_settlement == round_


def test_the_model_list_keeps_the_key_order_openai_clients_see() -> None:
    listed = ModelList(data=[ProviderModelCard(id="m", owned_by=USER, model_hash="0x00")]).model_dump(mode="json")
    assert json.dumps(listed) == json.dumps({"object": "list", "data": [
        {"id": "m", "object": "model", "owned_by": USER, "model_hash": "0x00"}]})


def test_only_json_true_streams_a_chat() -> None:
    assert ChatCall.model_validate({"model": "m", "stream": True}).streaming
    assert not ChatCall.model_validate({"model": "m", "stream": "true"}).streaming
    assert not ChatCall.model_validate({"model": "m"}).streaming
    with pytest.raises(ValueError):
        ChatCall.model_validate({"model": 3})
    with pytest.raises(ValueError):
        VerifyCall.model_validate({"id": 3})
