"""``ComputeUser``: the user side of paid inference — ledger, signing, verifying, receipts.

Per request (compute.md §4.3–4.4, fixing §12's defects): the client builds the exact body
bytes, signs ``Request(user, provider, nonce, keccak(body), maxFee)``, sends them, and on the
answer re-hashes the bytes it actually received, checks the provider's signature against the
registered (and acknowledged) signer, the model id and hash, and the billed usage and fee
against its own count with the model's tokenizer. Only then does it sign the next cumulative
``Receipt`` and hand it to the provider. Anything else raises ``ResponseRejected`` and no
receipt is signed.

A stream cut short (the client left, the connection broke) is paid for what was received
(``verify_partial``): the provider's signed Response for it (fetched by id) must name the
request, the registered model and signer, and the client pays the smaller of its fee and the
fee of the prompt and of the output tokens it received by its own count.

Local state (``state_dir``): ``receipts.json`` (the cumulative total signed per provider) and
``responses.jsonl`` (every verified response, for ``zg compute verify``).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from zgos.compute.contracts import ComputeContracts, ServiceInfo, ServiceNotRegistered
from zgos.compute.provider.wire import (
    HEADER_MAX_FEE,
    HEADER_NONCE,
    HEADER_RESPONSE,
    HEADER_SIGNATURE,
    HEADER_USER,
    SignedReceipt,
)
from zgos.compute.spec import sse
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import (
    AGENT_FIELD,
    Usage,
    compute_fee,
    compute_max_fee,
    compute_prompt_budget,
    compute_usage,
    count_output_tokens,
    parse_chat_request,
)
from zgos.compute.spec.limits import compute_answer_cap_bytes
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.records import agent_record
from zgos.compute.user.verification import ResponseRejected, check_signed, check_usage
from zgos.compute.user.wire import LedgerView, RefundResult, StoredVerification, SubAccountView
from zgos.core.errors import ConfigError, ZgError
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.outbound import OutboundClient

DEFAULT_MAX_TOKENS = 256
NONCE_BYTES = 16
SIGNATURE_FETCH_S = 10.0  # a provider's signed Response, fetched again to re-check it
SIGNATURE_ANSWER_BYTES = 64 * 1024
PROMPT_TOKENS_PER_MESSAGE = 8  # template overhead bound when no tokenizer is available


class ProviderError(ZgError):
    """The provider refused or failed a request (``status`` is its HTTP status)."""

    def __init__(self, provider: str, status: int, kind: str, message: str) -> None:
        super().__init__(f"provider {provider} answered HTTP {status}: {message}")
        self.provider = provider
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class SignedRequest:
    request: v.Request
    request_hash: bytes
    body: bytes
    headers: dict[str, str]
    max_tokens: int


@dataclass(frozen=True)
class Verified:
    """An answer that passed every check, and the receipt signed for it."""

    provider: str
    response_id: str
    response: v.Response
    receipt: v.Receipt
    receipt_signature: bytes
    text: str


def body_with_defaults(data: dict[str, Any], model: str | None = None) -> bytes:
    """Chat body bytes as they will be signed and sent: ``max_tokens`` defaulted, model set."""
    data = dict(data)
    if model is not None:
        data["model"] = model
    data.setdefault("max_tokens", data.pop("max_completion_tokens", DEFAULT_MAX_TOKENS))
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def error_of(response: httpx.Response) -> tuple[str, str]:
    return error_of_body(response.content)


def error_of_body(body: bytes) -> tuple[str, str]:
    """``(type, message)`` of a ``{"error": {...}}`` answer, or of any other body."""
    text = body.decode(errors="replace")
    try:
        error = json.loads(body)["error"]
        return str(error.get("type", "error")), str(error.get("message", text))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "error", text[:300]


class ComputeUser:
    """One user account on one deployment. Its own calls to providers (``chat``,
    ``verify_stored``) go through the outbound guard under ``policy``: a provider's URL is a
    stranger's claim."""

    def __init__(self, contracts: ComputeContracts, account: LocalAccount, state_dir: Path,
                 tokens: TokenCounter | None = None, timeout_s: float = 120.0,
                 policy: AddressPolicy = OPEN_POLICY) -> None:
        self.contracts = contracts
        self.policy = policy
        self.account = account
        self.address = v.normalize_address(account.address)
        self.state_dir = state_dir
        self.tokens = tokens
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        # Called with (provider, amount) before each receipt is signed: the proxy's spend caps.
        self.on_receipt: Callable[[str, int], None] | None = None
        self._services: dict[str, ServiceInfo] = {}
        state_dir.mkdir(parents=True, exist_ok=True)
        self._receipts_path = state_dir / f"receipts-{self.address}.json"
        self._responses_path = state_dir / f"responses-{self.address}.jsonl"
        self._totals: dict[str, int] = self._load_totals()

    def __enter__(self) -> ComputeUser:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    # --- ledger ------------------------------------------------------------------------

    def ledger(self) -> LedgerView:
        subs: dict[str, SubAccountView] = {}
        for provider in self.contracts.providers_of(self.address):
            account = self.contracts.sub_account(self.address, provider)
            subs[provider] = {"balance": account.balance, "pending_refund": account.pending_refund,
                              "refund_unlock_at": account.refund_unlock_at,
                              "settled": self.contracts.settled(self.address, provider),
                              "receipted": self._totals.get(v.normalize_address(provider), 0)}
        return {"user": self.account.address, "available": self.contracts.available(self.address),
                "sub_accounts": subs}

    def deposit(self, amount: int) -> str:
        return self.contracts.deposit(self.account, amount).tx_hash

    def withdraw(self, amount: int) -> str:
        return self.contracts.withdraw(self.account, amount).tx_hash

    def fund(self, provider: str, amount: int) -> str:
        """Move ``amount`` into the sub-account with ``provider`` (depositing what the ledger
        lacks) and acknowledge its registered signer if not yet done."""
        service = self.service(provider)
        available = self.contracts.available(self.address)
        if available >= amount:
            tx = self.contracts.fund(self.account, provider, amount).tx_hash
        else:
            if available:
                self.contracts.fund(self.account, provider, available)
            tx = self.contracts.deposit_and_fund(self.account, provider, amount - available).tx_hash
        self.acknowledge(service)
        return tx

    def refund(self, provider: str, amount: int | None = None) -> RefundResult:
        """Collect an unlocked refund if there is one, else request one (all by default)."""
        account = self.contracts.sub_account(self.address, provider)
        if account.pending_refund:
            receipt = self.contracts.process_refund(self.account, provider)
            return {"processed": True, "tx": receipt.tx_hash}
        requested = amount if amount is not None else account.balance
        receipt = self.contracts.request_refund(self.account, provider, requested)
        unlock = receipt.events(self.contracts.ledger, "RefundRequested")[0]["args"]["unlockAt"]
        return {"processed": False, "requested": requested, "unlock_at": int(unlock), "tx": receipt.tx_hash}

    def providers(self, model: str | None = None) -> list[ServiceInfo]:
        services = self.contracts.services()
        return [s for s in services if model is None or s.model == model]

    def service(self, provider: str, *, fresh: bool = False) -> ServiceInfo:
        key = v.normalize_address(provider)
        if fresh or key not in self._services:
            self._services[key] = self.contracts.service(provider)
        return self._services[key]

    def acknowledge(self, service: ServiceInfo) -> bool:
        """Acknowledge the provider's registered signer; return whether a tx was needed."""
        current = self.contracts.acknowledged_signer(self.address, service.provider)
        if v.normalize_address(current) == v.normalize_address(service.signer):
            return False
        self.contracts.acknowledge(self.account, service.provider, service.signer)
        return True

    def default_provider(self, model: str | None = None) -> ServiceInfo:
        services = self.providers(model)
        if len(services) != 1:
            names = ", ".join(s.provider for s in services) or "none"
            raise ConfigError(f"{len(services)} providers serve {model or 'any model'} ({names})",
                              "name one: PROVIDER argument / --provider")
        return services[0]

    # --- requests ----------------------------------------------------------------------

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        if self.tokens is not None:
            return self.tokens.count_prompt(messages)
        # Every token holds at least one byte: the text length bounds the token count.
        return sum(len(str(m.get("content", "")).encode()) for m in messages) + \
            PROMPT_TOKENS_PER_MESSAGE * (len(messages) + 1)

    def max_fee(self, service: ServiceInfo, body: bytes) -> int:
        """The worst-case fee of ``body`` at ``service``'s prices: what signing it commits to."""
        chat = parse_chat_request(body)
        return compute_max_fee(compute_prompt_budget(self.prompt_tokens(chat.messages), chat), chat.max_tokens,
                               service.prices)

    def sign_request(self, service: ServiceInfo, body: bytes, max_fee: int | None = None) -> SignedRequest:
        """Sign ``body`` for ``service``: a fresh random nonce and the worst-case fee."""
        chat = parse_chat_request(body)
        if max_fee is None:
            max_fee = self.max_fee(service, body)
        request = v.Request(self.address, v.normalize_address(service.provider),
                            int.from_bytes(secrets.token_bytes(NONCE_BYTES), "big"),
                            v.compute_body_hash(body), max_fee)
        signature = v.sign_message(bytes(self.account.key), self.contracts.domain, request)
        headers = {
            HEADER_USER: self.account.address, HEADER_NONCE: str(request.nonce),
            HEADER_MAX_FEE: str(max_fee), HEADER_SIGNATURE: "0x" + signature.hex(),
            "content-type": "application/json",
        }
        return SignedRequest(request, v.compute_request_hash(self.contracts.domain, request), body,
                             headers, chat.max_tokens)

    def verify(self, service: ServiceInfo, signed: SignedRequest, received: bytes, signed_response: str | None,
               output: Sequence[str]) -> v.Response:
        """Every check on a complete answer whose generated pieces are ``output`` (``sse``;
        module docstring); raise ``ResponseRejected``."""
        provider = service.provider
        if not signed_response:
            raise ResponseRejected(provider, "the answer carries no signed response")
        response = check_signed(self.contracts.domain, service, signed.request_hash, signed.request.max_fee,
                                signed_response)
        if response.response_hash != v.compute_body_hash(received):
            raise ResponseRejected(provider, "the answer's bytes differ from what the provider signed")
        if self.tokens is not None:
            check_usage(provider, response, self.usage_received(signed, output),
                        parse_chat_request(signed.body).agent is not None)
        elif response.output_tokens > signed.max_tokens:
            raise ResponseRejected(provider, "billed more output tokens than max_tokens")
        return response

    def verify_partial(self, service: ServiceInfo, signed: SignedRequest, signed_response: str,
                       output: Sequence[str]) -> tuple[v.Response, int]:
        """Check the provider's signed Response for a stream cut short, of which ``output``
        arrived; return it and what to pay: the smaller of its fee and the fee of what arrived
        (with no tokenizer, a byte bound: every token is at least one byte)."""
        response = check_signed(self.contracts.domain, service, signed.request_hash, signed.request.max_fee,
                                signed_response)
        usage = self.usage_received(signed, output)
        return response, min(response.fee, compute_fee(usage, service.prices))

    def usage_received(self, signed: SignedRequest, output: Sequence[str]) -> Usage:
        """The usage of an answer of which ``output`` arrived, by this client's own count."""
        chat = parse_chat_request(signed.body)
        count = self.tokens.count_completion if self.tokens is not None else _utf8_bytes
        return compute_usage(self.prompt_tokens(chat.messages), count_output_tokens(output, count), signed.max_tokens)

    def accept(self, service: ServiceInfo, signed: SignedRequest, response: v.Response, text: str,
               amount: int | None = None) -> Verified:
        """Sign the next cumulative receipt for a verified response — its fee, or ``amount``
        for a stream cut short — and record both. A request that ran an agent is recorded with
        its signed fields and body, so its lineage can show which agent answered it."""
        provider = v.normalize_address(service.provider)
        with self._lock:
            total = self._totals.get(provider, 0)
            if total == 0:
                total = self.contracts.settled(self.address, provider)
            charged = response.fee if amount is None else amount
            receipt = v.Receipt(self.address, provider, total + charged)
            if self.on_receipt is not None:
                self.on_receipt(provider, charged)
            self._totals[provider] = receipt.total
            self._save_totals()
            response_id = "0x" + response.request_hash.hex()
            with open(self._responses_path, "a") as handle:
                handle.write(json.dumps({"id": response_id, "provider": service.provider,
                                         "signed": v.encode_response(response, b"\x00" * 65),
                                         "receipt_total": receipt.total, **agent_record(signed.request, signed.body)}) + "\n")
        signature = v.sign_message(bytes(self.account.key), self.contracts.domain, receipt)
        return Verified(service.provider, response_id, response, receipt, signature, text)

    def receipt_payload(self, verified: Verified) -> SignedReceipt:
        """The body of ``POST /v1/proxy/receipt``: the receipt ``verified`` signed."""
        return SignedReceipt(user=self.account.address, total=verified.receipt.total,
                             signature=verified.receipt_signature)

    def chat(self, provider: str, messages: list[dict[str, Any]], max_tokens: int = 64,
             model: str | None = None, agent: int | None = None, sampling: dict[str, Any] | None = None) -> Verified:
        """One non-streamed, paid, verified chat completion (blocking); ``agent``: run that
        AgentNFT token on the provider, as a sealed executor; ``sampling``: OpenAI sampling
        fields (``temperature``, ``seed``, ...)."""
        service = self.service(provider)
        fields: dict[str, Any] = {**(sampling or {}), "messages": messages, "max_tokens": max_tokens}
        if agent is not None:
            fields[AGENT_FIELD] = agent
        body = body_with_defaults(fields, model or service.model)
        signed = self.sign_request(service, body)
        with OutboundClient(self.policy, deadline_s=self.timeout_s,
                            max_response_bytes=compute_answer_cap_bytes(signed.max_tokens)) as client:
            try:
                answer = client.post(service.url.rstrip("/") + "/v1/proxy/chat/completions",
                                     content=body, headers=signed.headers)
            except httpx.HTTPError as exc:
                raise ProviderError(service.provider, 0, "unreachable",
                                    f"cannot reach {service.url} ({type(exc).__name__}: {exc})") from None
            if answer.status_code != 200:
                raise ProviderError(service.provider, answer.status_code, *error_of(answer))
            response = self.verify(service, signed, answer.content, answer.headers.get(HEADER_RESPONSE),
                                   sse.body_output(answer.content))
            verified = self.accept(service, signed, response, sse.body_text(answer.content))
            client.post(service.url.rstrip("/") + "/v1/proxy/receipt", json=self.receipt_payload(verified).model_dump(mode="json"))
        return verified

    def verify_stored(self, response_id: str) -> StoredVerification:
        """Re-check a recorded response: fetch the provider's signature for it and check it
        against the registry and the local record."""
        record = None
        if self._responses_path.exists():
            for line in self._responses_path.read_text().splitlines():
                entry = json.loads(line)
                if entry["id"] == response_id.lower():
                    record = entry
        if record is None:
            raise ConfigError(f"no response {response_id} in {self._responses_path}",
                              "ids are printed by `zg compute chat` and returned as the zg-res-key header")
        try:
            service = self.service(record["provider"])
        except ServiceNotRegistered:
            raise ConfigError(f"provider {record['provider']} is no longer registered") from None
        with OutboundClient(self.policy, deadline_s=SIGNATURE_FETCH_S,
                            max_response_bytes=SIGNATURE_ANSWER_BYTES) as client:
            try:
                fetched = client.get(f"{service.url.rstrip('/')}/v1/proxy/signature/{response_id}")
            except httpx.HTTPError as exc:
                raise ProviderError(service.provider, 0, "unreachable", f"cannot reach {service.url} ({exc})") from None
        if fetched.status_code != 200:
            raise ProviderError(service.provider, fetched.status_code, *error_of(fetched))
        response, signature = v.decode_response(fetched.text)
        local, _ = v.decode_response(record["signed"])
        valid = v.is_valid_signature(self.contracts.domain, response, signature, service.signer)
        return {"id": response_id, "provider": service.provider, "signer": service.signer,
                "signature_valid": valid, "matches_local_record": response == local,
                "model": response.model_id, "fee": response.fee,
                "usage": [response.input_tokens, response.output_tokens]}

    # --- local state -------------------------------------------------------------------

    def _load_totals(self) -> dict[str, int]:
        try:
            return {k: int(val) for k, val in json.loads(self._receipts_path.read_text()).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self._receipts_path}: {exc}") from None

    def _save_totals(self) -> None:
        tmp = self._receipts_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: str(val) for k, val in self._totals.items()}))
        os.replace(tmp, self._receipts_path)


def _utf8_bytes(text: str) -> int:
    return len(text.encode())
