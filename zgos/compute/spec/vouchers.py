"""The inference payment protocol: three EIP-712 messages and the rules that check them.

Reference: shared/reference/compute.md §4.3–4.6 (0G's request headers, response signatures and
TEE settlement) and §12 (its defects). zgos keeps 0G's shape — prepaid per-provider
sub-accounts, provider-signed responses, batch settlement — but nothing rests on a trusted key:

1. ``Request`` (signed by the **user** for every paid call): ``user``, ``provider``, a unique
   ``nonce``, ``bodyHash`` = keccak256 of the exact request body bytes, and ``maxFee``, the
   most the user agrees to pay for this call. The provider checks it before forwarding
   (0G's broker ignores the user's signature: anyone could bill anyone's account).
2. ``Response`` (signed by the **provider's registered signer** for every answer):
   ``requestHash`` (the EIP-712 hash of the Request), ``responseHash`` = keccak256 of the exact
   response bytes (for a stream, every SSE byte before the final signature event), ``modelId``
   (the registered model name the answer came from), ``modelHash`` (the model id: the storage
   root of the model file, its ``ModelRegistry`` id), ``inputTokens``, ``outputTokens`` and
   ``fee``. The user's client re-hashes both bodies from the bytes it actually sent and received
   and recomputes usage and fee (0G's SDK does not).
3. ``Receipt`` (signed by the **user** after checking a Response): ``user``, ``provider`` and
   ``total``, the cumulative amount the user owes the provider over the life of the
   sub-account. ``InferenceServing.settle`` pays ``total − settled`` and stores ``total``:
   one signature check and one transfer per user per settlement, whatever the number of
   requests (constant gas), and a receipt can never be paid twice (totals only grow).

All three are hashed under one EIP-712 domain (name ``DOMAIN_NAME``, version
``DOMAIN_VERSION``, the chain id, and the ``InferenceServing`` address), so a signature is
valid for exactly one deployment on one chain. Signatures are 65 bytes ``r ‖ s ‖ v`` with
``v ∈ {27, 28}`` and low ``s`` (the contract uses OpenZeppelin's ECDSA, which rejects high s).

**The most either side can lose** (each bound has a test that tries to break it).

*Billing follows delivery.* The broker bills a request when its answer ends, however it ends:
the prompt's tokens plus every output token it forwarded (content, reasoning, tool-call
arguments: ``zgos.compute.spec.sse``), capped at ``max_tokens``, so ``fee ≤ maxFee``. A stream cut
by the client, by the model server or by the broker's upstream timeout is billed for what was
forwarded until the cut and its Response is signed all the same (at the end of the stream when
the client is still there, else at ``GET /v1/proxy/signature/{id}``). The broker adds exactly
the fees of the Responses it signed to ``served``; nothing else is ever billed. Only a request
the model server failed before producing any output is not billed (provider's fault), and a
plain (non-streamed) answer is delivered whole or not at all: if it times out, nothing is
billed. When the client leaves, the broker drops the model server's connection at once, and
llama-cpp-python's server stops after the chunk it is producing.

- *User.* The chain pays a provider only up to the largest ``total`` the user signed, and the
  user's client adds to it only (a) the fee of a complete answer whose Response it checked
  (signature, request and response hashes, model, usage by its own token count, fee at the
  registered prices, ``fee ≤ maxFee``), or (b) for a stream cut short, ``min(signed fee, fee of
  the prompt and of the output tokens it actually received)``, where the signed Response must
  still name its request and the registered model and signer. So a user never pays for a token
  it did not receive, nor more than ``maxFee`` per request; a dishonest provider gains at
  most what a user received, and the client stops at the first answer that fails a check.
- *Provider.* It is paid only what users receipted, so its loss is what it served but was
  never receipted for: ``served − receipted`` per user. The broker admits a request only while
  ``(served − receipted) + inflight + maxFee ≤ credit`` (``validate_admission``), and a request
  that ends moves at most its reservation from ``inflight`` to ``served``, so
  ``served − receipted ≤ credit`` at every moment: **no user can owe more than ``credit``
  without signed receipts**, whether it disconnects, times out or simply never receipts
  (``--credit``; by default ``DEFAULT_CREDIT_REQUESTS`` = 16 worst-case requests, for
  concurrent clients). Beyond ``credit`` the provider also does, unbilled: the tokens the model
  server generates between the cut and noticing it (one chunk), a plain answer that timed
  out, and a stream whose model server failed before its first token.
- *Honest user, honest provider.* On a cut the provider bills what it forwarded and the user
  pays what it received; the difference is the bytes in flight at the cut (a chunk or two).
  It stays unreceipted, counts against ``credit`` and is the provider's loss.
- *Settlement.* Receipts are accepted only up to what was served (a receipt with no service
  behind it is refused), settled oldest debt first in chunks that fit the contract's batch
  limit and a share of the block gas limit (``zgos.compute.spec.settlement``), users with a pending
  refund first, earliest unlock first. ``settleBatch`` skips and reports a bad entry
  (``SettlementSkipped``) instead of reverting, so no entry blocks the others; a chunk that
  reverts anyway is split in halves until the failing entry is alone. The broker watches
  ``RefundRequested`` with one ``eth_getLogs`` per round and settles a refunding user within
  seconds, long before the refund unlocks (``lockTime``); settlements during the lock are
  paid before the refund (``LedgerManager.charge`` shrinks it). A provider loses receipted
  fees to a refund only if it stays offline for the whole lock time.

This module is pure: no I/O, clocks or randomness; keys and nonces are passed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from zgos.core.hashing import HASH_BYTES, keccak256
from zgos.core.signatures import (  # noqa: F401 (re-exported: the payment protocol signs with these)
    ADDRESS_BYTES,
    EIP712_PREFIX,
    SECP256K1_HALF_N,
    SECP256K1_N,
    SIGNATURE_BYTES,
    InvalidMessage,
    InvalidSignature,
    _hash32,
    address_of_private_key,
    address_of_public_key,
    normalize_address,
    recover_digest,
    sign_digest,
)

DOMAIN_NAME = "zgos InferenceServing"
DOMAIN_VERSION = "1"
UINT256_MAX = 2**256 - 1

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
REQUEST_TYPE = "Request(address user,address provider,uint256 nonce,bytes32 bodyHash,uint256 maxFee)"
RESPONSE_TYPE = (
    "Response(bytes32 requestHash,bytes32 responseHash,string modelId,bytes32 modelHash,"
    "uint256 inputTokens,uint256 outputTokens,uint256 fee)"
)
RECEIPT_TYPE = "Receipt(address user,address provider,uint256 total)"
DOMAIN_TYPEHASH = keccak256(DOMAIN_TYPE.encode())
REQUEST_TYPEHASH = keccak256(REQUEST_TYPE.encode())
RESPONSE_TYPEHASH = keccak256(RESPONSE_TYPE.encode())
RECEIPT_TYPEHASH = keccak256(RECEIPT_TYPE.encode())


# --- field encoding ----------------------------------------------------------------------


def _uint(value: int, name: str) -> int:
    if not isinstance(value, int) or value < 0 or value > UINT256_MAX:
        raise InvalidMessage(f"{name} must be a uint256, got {value!r}")
    return value


def _word_address(address: str) -> bytes:
    """ABI word of an address: 12 zero bytes, then the 20 address bytes."""
    return b"\x00" * 12 + bytes.fromhex(normalize_address(address)[2:])


def _word_uint(value: int, name: str) -> bytes:
    return _uint(value, name).to_bytes(32, "big")


def compute_body_hash(body: bytes) -> bytes:
    """keccak256 of the exact bytes of a request or response body."""
    return keccak256(body)


# --- the domain ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain: one ``InferenceServing`` deployment on one chain."""

    chain_id: int
    verifying_contract: str

    def separator(self) -> bytes:
        """``keccak(typeHash ‖ keccak(name) ‖ keccak(version) ‖ chainId ‖ contract)``."""
        return self._separator

    @cached_property
    def _separator(self) -> bytes:
        return keccak256(
            DOMAIN_TYPEHASH + keccak256(DOMAIN_NAME.encode()) + keccak256(DOMAIN_VERSION.encode())
            + _word_uint(self.chain_id, "chainId") + _word_address(self.verifying_contract)
        )

    def digest(self, struct_hash: bytes) -> bytes:
        """The 32 bytes that get signed: ``keccak(0x1901 ‖ domainSeparator ‖ structHash)``."""
        return keccak256(EIP712_PREFIX + self.separator() + _hash32(struct_hash, "structHash"))


# --- the three messages ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the user authorises for one call (see the module docstring, message 1)."""

    user: str
    provider: str
    nonce: int
    body_hash: bytes
    max_fee: int

    def struct_hash(self) -> bytes:
        """``keccak(typeHash ‖ user ‖ provider ‖ nonce ‖ bodyHash ‖ maxFee)``, 32-byte words."""
        return keccak256(
            REQUEST_TYPEHASH + _word_address(self.user) + _word_address(self.provider)
            + _word_uint(self.nonce, "nonce") + _hash32(self.body_hash, "bodyHash")
            + _word_uint(self.max_fee, "maxFee")
        )


@dataclass(frozen=True)
class Response:
    """What the provider vouches for one answer (message 2)."""

    request_hash: bytes
    response_hash: bytes
    model_id: str
    model_hash: bytes
    input_tokens: int
    output_tokens: int
    fee: int

    def struct_hash(self) -> bytes:
        """``keccak(typeHash ‖ requestHash ‖ responseHash ‖ keccak(modelId) ‖ modelHash ‖
        inputTokens ‖ outputTokens ‖ fee)``, 32-byte words (EIP-712 hashes strings)."""
        return keccak256(
            RESPONSE_TYPEHASH + _hash32(self.request_hash, "requestHash")
            + _hash32(self.response_hash, "responseHash") + keccak256(self.model_id.encode())
            + _hash32(self.model_hash, "modelHash") + _word_uint(self.input_tokens, "inputTokens")
            + _word_uint(self.output_tokens, "outputTokens") + _word_uint(self.fee, "fee")
        )


@dataclass(frozen=True)
class Receipt:
    """The user's cumulative acknowledgement of what it owes one provider (message 3)."""

    user: str
    provider: str
    total: int

    def struct_hash(self) -> bytes:
        """``keccak(typeHash ‖ user ‖ provider ‖ total)``, 32-byte words."""
        return keccak256(
            RECEIPT_TYPEHASH + _word_address(self.user) + _word_address(self.provider)
            + _word_uint(self.total, "total")
        )


Message = Request | Response | Receipt


def compute_digest(domain: Domain, message: Message) -> bytes:
    """The EIP-712 digest of ``message`` under ``domain`` (what is signed and recovered)."""
    return domain.digest(message.struct_hash())


def compute_request_hash(domain: Domain, request: Request) -> bytes:
    """The id of a request: its EIP-712 digest (what a Response's ``requestHash`` names)."""
    return compute_digest(domain, request)


# --- signatures ----------------------------------------------------------------------------


def sign_message(private_key: bytes, domain: Domain, message: Message) -> bytes:
    return sign_digest(private_key, compute_digest(domain, message))


def recover_message(domain: Domain, message: Message, signature: bytes) -> str:
    return recover_digest(compute_digest(domain, message), signature)


def validate_signed_by(domain: Domain, message: Message, signature: bytes, signer: str) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` over ``message`` is by ``signer``."""
    recovered = recover_message(domain, message, signature)
    if recovered != normalize_address(signer):
        kind = type(message).__name__.lower()
        raise InvalidSignature(f"{kind} signature is by {recovered}, expected {normalize_address(signer)}")


def is_valid_signature(domain: Domain, message: Message, signature: bytes, signer: str) -> bool:
    try:
        validate_signed_by(domain, message, signature, signer)
    except (InvalidSignature, InvalidMessage):
        return False
    return True


# --- receipts ------------------------------------------------------------------------------


def compute_settlement_amount(receipt_total: int, settled_total: int, balance: int) -> int:
    """What ``InferenceServing.settle`` pays for a receipt: the part of ``receipt_total`` not
    yet settled, capped by the sub-account ``balance`` (the rest stays claimable with the
    same receipt once the user tops up). Zero if the receipt is not above ``settled_total``.
    """
    owed = max(0, _uint(receipt_total, "total") - _uint(settled_total, "settled"))
    return min(owed, _uint(balance, "balance"))


def next_receipt(previous: Receipt | None, user: str, provider: str, fee: int) -> Receipt:
    """The receipt a user signs after accepting a response costing ``fee``: the previous
    cumulative total plus ``fee`` (the first receipt of a sub-account starts from 0)."""
    total = (previous.total if previous is not None else 0) + _uint(fee, "fee")
    return Receipt(normalize_address(user), normalize_address(provider), total)


# --- wire form (JSON at the HTTP edge) ------------------------------------------------------


def encode_response(response: Response, signature: bytes) -> str:
    """Compact ASCII JSON of a signed Response (an HTTP header value or the final SSE event)."""
    fields: dict[str, Any] = asdict(response)
    for name in ("request_hash", "response_hash", "model_hash"):
        fields[name] = "0x" + fields[name].hex()
    fields["signature"] = "0x" + signature.hex()
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def decode_response(text: str | bytes) -> tuple[Response, bytes]:
    """Parse ``encode_response`` output; raise ``InvalidMessage`` on any malformed field."""
    try:
        fields = json.loads(text)
        response = Response(
            request_hash=_decode_hex(fields["request_hash"], HASH_BYTES),
            response_hash=_decode_hex(fields["response_hash"], HASH_BYTES),
            model_id=str(fields["model_id"]),
            model_hash=_decode_hex(fields["model_hash"], HASH_BYTES),
            input_tokens=_uint(fields["input_tokens"], "input_tokens"),
            output_tokens=_uint(fields["output_tokens"], "output_tokens"),
            fee=_uint(fields["fee"], "fee"),
        )
        signature = _decode_hex(fields["signature"], SIGNATURE_BYTES)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidMessage(f"malformed signed response: {exc}") from None
    return response, signature


def _decode_hex(text: Any, size: int) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise InvalidMessage(f"expected 0x-hex, got {text!r}")
    data = bytes.fromhex(text[2:])
    if len(data) != size:
        raise InvalidMessage(f"expected {size} bytes, got {len(data)}")
    return data


def decode_hex(text: str, size: int) -> bytes:
    """Parse ``0x``-hex of exactly ``size`` bytes; raise ``InvalidMessage`` otherwise."""
    try:
        return _decode_hex(text, size)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
