"""Compute probes: a paid request to a provider, checked as no user can (issue 17 §2).

Each probe is an ordinary signed request from the auditor's own funded sub-account, asked
greedily (temperature 0, a fixed seed). The answer is checked for:

- **a fault the chain proves** (:mod:`zgos.alignment.spec.faults`): a fee that is not the usage
  at the registered prices, or another model hash than the registered one. The signed response
  is the evidence for ``slashCompute``;
- **over-billing**: the billed tokens against the auditor's own count with the model's
  tokenizer (what the chain cannot check: the tokenizer);
- **altered answers**: bytes that differ from the hash the provider signed;
- **latency** above ``latency_limit_s``, and refusals (errors, no signature);
- **a wrong model**: the same prompt re-executed on the auditor's own copy of the registered
  model (:mod:`zgos.alignment.auditor.reference`) must give the same text.

An honest answer is paid for like any user's (a receipt), so probes look like ordinary traffic
and cost providers nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from zgos.alignment.auditor.findings import (
    LATENCY_DELTA,
    OVERBILLING_DELTA,
    REFUSAL_DELTA,
    WRONG_OUTPUT_DELTA,
    AuditorError,
    Observation,
)
from zgos.alignment.auditor.reference import GREEDY, ReferenceModel
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.faults import ComputeFault, ProviderTerms, compute_response_faults
from zgos.alignment.spec.reports import Finding
from zgos.compute.contracts import ServiceInfo
from zgos.compute.provider.wire import HEADER_RESPONSE
from zgos.compute.spec import sse
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.limits import compute_answer_cap_bytes
from zgos.compute.user.client import ComputeUser, SignedRequest, body_with_defaults, error_of
from zgos.compute.user.verification import response_usage
from zgos.runtime.outbound import OutboundClient

CHECK = "compute-probe"
PROBE_MAX_TOKENS = 16
DEFAULT_LATENCY_LIMIT_S = 30.0
PROBE_TIMEOUT_S = 120.0
RECEIPT_TIMEOUT_S = 10.0  # total, handing the provider its receipt
AUDITOR_SIDE_STATUSES = frozenset({402, 403, 429})  # the auditor's funds or acknowledgement


@dataclass(frozen=True)
class SlashableResponse:
    """A signed response that proves ``faults`` on chain."""

    provider: str
    response: v.Response
    signature: bytes
    faults: ComputeFault


@dataclass
class ProbeOutcome:
    provider: str
    observations: list[Observation] = field(default_factory=list)
    slashable: SlashableResponse | None = None
    latency_s: float | None = None

    @property
    def clean(self) -> bool:
        return self.slashable is None and all(o.clean for o in self.observations)


class ComputeProbe:
    def __init__(self, user: ComputeUser, model_file: Callable[[bytes], Path | None], log_dir: Path,
                 latency_limit_s: float = DEFAULT_LATENCY_LIMIT_S, max_tokens: int = PROBE_MAX_TOKENS) -> None:
        self.user = user
        self.model_file = model_file  # registered model hash -> the auditor's copy of that GGUF
        self.log_dir = log_dir
        self.latency_limit_s = latency_limit_s
        self.max_tokens = max_tokens
        self._references: dict[Path, ReferenceModel] = {}

    def reference(self, model_hash: bytes) -> ReferenceModel | None:
        """The auditor's model server for a registered model hash (one at a time: each is a
        whole model in memory), or None when the auditor has no copy of that model."""
        path = self.model_file(model_hash)
        if path is None:
            return None
        if path not in self._references:
            self.close()
            self._references[path] = ReferenceModel(path, self.log_dir)
        return self._references[path]

    def close(self) -> None:
        for reference in self._references.values():
            reference.close()
        self._references.clear()

    def probe(self, service: ServiceInfo, prompt: str) -> ProbeOutcome:
        """One probe of ``service`` with ``prompt`` (``AuditorError`` if the auditor itself
        could not pay or be served)."""
        outcome = ProbeOutcome(service.provider)
        messages = [{"role": "user", "content": prompt}]
        body = body_with_defaults({**GREEDY, "messages": messages, "max_tokens": self.max_tokens}, service.model)
        signed = self.user.sign_request(service, body)
        started = time.monotonic()
        answer = self._send(service, signed, outcome)
        if answer is None:
            return outcome
        outcome.latency_s = time.monotonic() - started
        checked = self._check_signed(service, signed, answer, outcome)
        if checked is None:
            return outcome
        response, text = checked
        if outcome.latency_s > self.latency_limit_s:
            outcome.observations.append(self._observe(service, Finding.LATENCY, LATENCY_DELTA,
                                                      f"answered in {outcome.latency_s:.1f} s (limit {self.latency_limit_s:.0f} s)"))
        reference = self.reference(service.model_hash)
        if reference is not None:
            expected = reference.answer(messages, self.max_tokens)
            if expected != text:
                outcome.observations.append(self._observe(
                    service, Finding.WRONG_OUTPUT, WRONG_OUTPUT_DELTA, "the registered model answers otherwise",
                    prompt=prompt, answer=text, expected=expected[:2000], response=v.encode_response(response, b"")))
        if outcome.clean:
            self._pay(service, signed, response, text)
        return outcome

    def _send(self, service: ServiceInfo, signed: SignedRequest, outcome: ProbeOutcome) -> httpx.Response | None:
        url = service.url.rstrip("/") + "/v1/proxy/chat/completions"
        try:
            with OutboundClient(self.user.policy, deadline_s=PROBE_TIMEOUT_S,
                                max_response_bytes=compute_answer_cap_bytes(signed.max_tokens)) as client:
                answer = client.post(url, content=signed.body, headers=signed.headers)
        except httpx.HTTPError as exc:
            outcome.observations.append(self._observe(service, Finding.REFUSAL, REFUSAL_DELTA,
                                                      f"unreachable: {type(exc).__name__}"))
            return None
        if answer.status_code in AUDITOR_SIDE_STATUSES:
            kind, message = error_of(answer)
            raise AuditorError(f"provider {service.provider} refused the auditor ({answer.status_code} {kind}): {message}",
                               "fund the auditor's sub-account with this provider and acknowledge its signer")
        if answer.status_code != 200:
            kind, message = error_of(answer)
            outcome.observations.append(self._observe(service, Finding.REFUSAL, REFUSAL_DELTA,
                                                      f"HTTP {answer.status_code} {kind}: {message[:200]}"))
            return None
        return answer

    def _check_signed(self, service: ServiceInfo, signed: SignedRequest, answer: httpx.Response,
                      outcome: ProbeOutcome) -> tuple[v.Response, str] | None:
        """The signed response and the answer's text, if the signature holds; records faults,
        over-billing and altered bytes in ``outcome``."""
        try:
            response, signature = v.decode_response(answer.headers.get(HEADER_RESPONSE, ""))
            v.validate_signed_by(self.user.contracts.domain, response, signature, service.signer)
        except (v.InvalidMessage, v.InvalidSignature) as exc:
            outcome.observations.append(self._observe(service, Finding.REFUSAL, REFUSAL_DELTA,
                                                      f"answer without a valid signed response: {exc}"))
            return None
        faults = compute_response_faults(response, ProviderTerms(service.prices, service.model_hash, service.signer))
        if response.request_hash == signed.request_hash and faults:
            outcome.slashable = SlashableResponse(service.provider, response, signature, faults)
        text = sse.body_text(answer.content)
        counted = self.user.usage_received(signed, sse.body_output(answer.content))
        if response_usage(response) != counted:
            outcome.observations.append(self._observe(
                service, Finding.OTHER, OVERBILLING_DELTA,
                f"billed {response.input_tokens}+{response.output_tokens} tokens, counted "
                f"{counted.input_tokens}+{counted.output_tokens}", response=v.encode_response(response, signature),
                body=signed.body.decode(errors="replace"), answer=text))
        if response.response_hash != v.compute_body_hash(answer.content):
            outcome.observations.append(self._observe(
                service, Finding.WRONG_OUTPUT, WRONG_OUTPUT_DELTA, "the answer's bytes differ from what it signed",
                response=v.encode_response(response, signature), answer=text))
        return response, text

    def _pay(self, service: ServiceInfo, signed: SignedRequest, response: v.Response, text: str) -> None:
        verified = self.user.accept(service, signed, response, text)
        with contextlib.suppress(httpx.HTTPError), \
                OutboundClient(self.user.policy, deadline_s=RECEIPT_TIMEOUT_S) as http:  # the URL is the provider's claim
            # the next receipt is cumulative: it carries this one too
            http.post(service.url.rstrip("/") + "/v1/proxy/receipt", json=self.user.receipt_payload(verified).model_dump(mode="json"))

    @staticmethod
    def _observe(service: ServiceInfo, finding: Finding, delta: int, detail: str, **evidence: Any) -> Observation:
        return Observation(service.provider, BondKind.COMPUTE, CHECK, finding, delta, detail,
                           {"url": service.url, "model": service.model, "model_hash": "0x" + service.model_hash.hex(),
                            **evidence})

