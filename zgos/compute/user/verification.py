"""What makes a provider's signed Response acceptable to the user (compute.md §4.4).

``check_signed``: signed by the registered signer, naming the request the user signed and the
registered model, its fee that of its usage at the registered prices and within the signed max
fee. ``ComputeUser.verify`` adds the checks on the answer's bytes and token count. A failed check
raises ``ResponseRejected``: no receipt is signed.
"""

from __future__ import annotations

from zgos.compute.contracts import ServiceInfo
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import (
    AGENT_PROMPT_MAX_TOKENS,
    Usage,
    compute_fee,
    is_agent_input_billable,
)
from zgos.core.errors import ZgError


class ResponseRejected(ZgError):
    """A provider's answer failed a check; no receipt was signed for it."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"response from {provider} rejected: {reason}", "no receipt was signed; "
                         "the provider is not paid for it")
        self.provider = provider
        self.reason = reason


def check_signed(domain: v.Domain, service: ServiceInfo, request_hash: bytes, max_fee: int,
                 signed_response: str) -> v.Response:
    """The signed Response's signature (by the registered signer), request, model and fee."""
    provider = service.provider
    try:
        response, signature = v.decode_response(signed_response)
        v.validate_signed_by(domain, response, signature, service.signer)
    except (v.InvalidMessage, v.InvalidSignature) as exc:
        raise ResponseRejected(provider, f"bad response signature: {exc}") from None
    if response.request_hash != request_hash:
        raise ResponseRejected(provider, "the signed response names another request")
    if response.model_id != service.model or response.model_hash != service.model_hash:
        raise ResponseRejected(provider, f"answer claims model {response.model_id!r}, registered "
                                         f"{service.model!r} with another hash")
    if response.fee != compute_fee(response_usage(response), service.prices):
        raise ResponseRejected(provider, "fee does not match usage at the registered prices")
    if response.fee > max_fee:
        raise ResponseRejected(provider, f"fee {response.fee} exceeds the signed max fee")
    return response


def response_usage(response: v.Response) -> Usage:
    return Usage(response.input_tokens, response.output_tokens)


def check_usage(provider: str, response: v.Response, counted: Usage, agent: bool) -> None:
    """The billed usage is what this client counted; for an agent call, whose system prompt
    the user never sees, the input may exceed the count by ``AGENT_PROMPT_MAX_TOKENS``."""
    if agent:
        ok = response.output_tokens == counted.output_tokens and \
            is_agent_input_billable(response.input_tokens, counted.input_tokens)
    else:
        ok = response_usage(response) == counted
    if not ok:
        allowance = f" (an agent call allows {AGENT_PROMPT_MAX_TOKENS} more in)" if agent else ""
        raise ResponseRejected(provider, f"billed usage {response.input_tokens}+{response.output_tokens} tokens, "
                                         f"counted {counted.input_tokens}+{counted.output_tokens}{allowance}")

