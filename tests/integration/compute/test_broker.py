"""The provider broker in front of the real model server: paid requests are signed,
billed by tokens and receipted; every bad request is refused with a 4xx and billed nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from eth_account import Account

from tests.integration.compute.conftest import BrokerProcess
from zgos.compute.provider.wire import HEADER_RESPONSE, HEADER_SIGNATURE, HEADER_USER
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import compute_fee, compute_usage
from zgos.compute.spec.sse import body_output
from zgos.compute.user.client import ComputeUser, body_with_defaults
from zgos.compute.user.verification import response_usage

HELLO = [{"role": "user", "content": "Say hi"}]


def _post(broker: BrokerProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(broker.url + "/v1/proxy/chat/completions", content=body, headers=headers, timeout=60)


def test_paid_chat_is_billed_by_tokens_signed_and_receipted(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    user = make_user(broker.provider.address)
    verified = user.chat(broker.provider.address, HELLO, max_tokens=4)
    response = verified.response
    assert response.model_id == "gemma-3-270m"
    assert response.output_tokens <= 4 and response.input_tokens > 0
    assert verified.receipt.total == response.fee == compute_fee(response_usage(response), user.service(
        broker.provider.address).prices)
    fetched = httpx.get(f"{broker.url}/v1/proxy/signature/{verified.response_id}", timeout=10)
    assert v.decode_response(fetched.text)[0] == response
    assert user.verify_stored(verified.response_id)["signature_valid"] is True
    attestation = httpx.get(broker.url + "/v1/proxy/attestation", params={"nonce": "n1"}, timeout=10).json()
    assert attestation["tee"] is False and "No TEE" in attestation["note"]
    proof = attestation["key_proof"]
    message = proof["message"].encode()
    digest = v.keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
    assert v.recover_digest(digest, bytes.fromhex(proof["signature"][2:])) == broker.provider.address.lower()
    models = httpx.get(broker.url + "/v1/proxy/models", timeout=10).json()
    assert models["data"][0]["id"] == "gemma-3-270m"


def test_bad_requests_are_refused_with_4xx_and_nothing_billed(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    service = user.service(provider)
    body = body_with_defaults({"messages": HELLO, "max_tokens": 2}, "gemma-3-270m")
    before = broker.status()

    # forged signature: signed by a key that is not the claimed user's
    forger = Account.create()
    signed = user.sign_request(service, body)
    forged_sig = v.sign_message(bytes(forger.key), user.contracts.domain, signed.request)
    refused = _post(broker, body, {**signed.headers, HEADER_SIGNATURE: "0x" + forged_sig.hex()})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "bad-signature"

    # someone else's account: a valid signature of the attacker, claiming the victim's address
    attacker = make_user(provider)
    stolen = attacker.sign_request(service, body)
    refused = _post(broker, body, {**stolen.headers, HEADER_USER: user.account.address})
    assert refused.status_code == 401

    # the body was changed after signing
    refused = _post(broker, body.replace(b"Say hi", b"Say no"), signed.headers)
    assert refused.status_code == 401

    # unregistered model
    other = body_with_defaults({"messages": HELLO, "max_tokens": 2}, "gpt-4o")
    refused = _post(broker, other, user.sign_request(service, other).headers)
    assert refused.status_code == 404 and "gpt-4o" in refused.json()["error"]["message"]

    # unacknowledged provider
    stranger = make_user(provider, acknowledge=False)
    refused = _post(broker, body, stranger.sign_request(service, body).headers)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "not-acknowledged"

    # beyond the balance
    poor = make_user(provider, fund=10)
    refused = _post(broker, body, poor.sign_request(service, body).headers)
    assert refused.status_code == 402 and "insufficient balance" in refused.json()["error"]["message"]

    # no signature at all, malformed body
    assert _post(broker, body, {"content-type": "application/json"}).status_code == 401
    refused = _post(broker, b"{not json", user.sign_request(service, body).headers)
    assert refused.status_code == 401  # the signature covers other bytes

    after = broker.status()
    assert (after["requests"], after["served"]) == (before["requests"], before["served"])

    # replayed nonce: the first use is served and billed once, the replay is refused
    fresh = user.sign_request(service, body)
    first = _post(broker, body, fresh.headers)
    assert first.status_code == 200
    replay = _post(broker, body, fresh.headers)
    assert replay.status_code == 409 and replay.json()["error"]["type"] == "replayed-nonce"
    final = broker.status()
    assert final["requests"] == int(before["requests"]) + 1  # type: ignore[call-overload]
    response = user.verify(service, fresh, first.content, first.headers[HEADER_RESPONSE], body_output(first.content))
    assert int(final["served"]) - int(before["served"]) == response.fee  # type: ignore[call-overload]


def test_streamed_answer_ends_with_a_signature_over_every_byte(
    broker: BrokerProcess, make_user: Callable[..., ComputeUser]
) -> None:
    provider = broker.provider.address
    user = make_user(provider)
    service = user.service(provider)
    body = body_with_defaults({"messages": HELLO, "max_tokens": 4, "stream": True}, "gemma-3-270m")
    signed = user.sign_request(service, body)
    with httpx.stream("POST", broker.url + "/v1/proxy/chat/completions", content=body, headers=signed.headers,
                      timeout=60) as answer:
        assert answer.status_code == 200
        raw = b"".join(answer.iter_raw())
    mark = raw.rfind(b"event: zg-signature\n")
    assert mark > 0 and b"data: [DONE]" in raw[:mark]
    signed_json = raw[mark:].split(b"data: ", 1)[1].strip().decode()
    from zgos.compute.spec.sse import EventSplitter, stream_output, stream_text
    events = EventSplitter().feed(raw[:mark])
    text = stream_text(events)
    response = user.verify(service, signed, raw[:mark], signed_json, stream_output(events))
    assert response.output_tokens == compute_usage(0, user.tokens.count_completion(text), 4).output_tokens  # type: ignore[union-attr]
    assert json.loads(signed_json)["model_id"] == "gemma-3-270m"
