"""Billing rules shared by provider and user: what a chat request may cost and what it costs.

Reference: shared/reference/compute.md §4.3 (0G bills bytes of re-serialised JSON in and
whitespace-separated words out, while its SDK estimates UTF-8 bytes: the two sides never
agree). zgos bills **tokens of the model's own tokenizer**, counted by one rule both sides run:

- ``input_tokens``  = tokens of the chat prompt the model server renders from ``messages``
  (its chat template, BOS included) — ``zgos.compute.tokens.TokenCounter.count_prompt``;
- ``output_tokens`` = the sum of the tokens of every piece of text the model generated
  (content, reasoning, tool-call arguments: ``zgos.compute.spec.sse.body_output`` /
  ``stream_output``), each counted with ``count_completion``, capped at the request's
  ``max_tokens`` — ``count_output_tokens``;
- ``fee = input_tokens × inputPrice + output_tokens × outputPrice`` (neuron, prices per token
  from the on-chain service record).

A paid request must name the registered model, set ``max_tokens`` (1 ‥ ``MAX_TOKENS_LIMIT``) and
ask for one choice (``n`` absent or 1: ``max_tokens`` bounds one answer, not ``n`` of them), so
its worst-case fee ``input_tokens × inputPrice + max_tokens × outputPrice`` is known before
the model runs; the user signs at least that as ``maxFee`` and the fee never exceeds it.

**Agents** (issue 16): a body with ``zg_agent`` (an ``AgentNFT`` token id) asks the provider to
run that agent as a sealed executor: the provider puts the agent's private system prompt in
front of ``messages``, so the prompt it bills holds tokens the user never sees. Such a prompt
is at most ``AGENT_PROMPT_MAX_TOKENS`` long, the user signs a ``maxFee`` that covers it
(``compute_prompt_budget``), and accepts billed input tokens from its own count up to its own
count plus that cap (``is_agent_input_billable``): the most an agent call can cost the user
beyond what it can check is ``AGENT_PROMPT_MAX_TOKENS × inputPrice``. A request for an agent
carries no system message of its own.

Pure: no I/O; token counts are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_TOKENS_LIMIT = 4096  # largest max_tokens a paid request may ask for
MAX_BODY_BYTES = 1 << 20  # 1 MiB: larger chat bodies are refused before parsing
AGENT_PROMPT_MAX_TOKENS = 512  # tokens an agent's hidden system prompt may add to a prompt
AGENT_FIELD = "zg_agent"  # the body field naming the agent (an AgentNFT token id)


class InvalidChatRequest(ValueError):
    """The body is not a chat completion request the provider can price."""


class AdmissionRefused(ValueError):
    """A valid request the provider will not serve now; ``reason`` names the limit hit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Prices:
    """Neuron per input token and per output token (the on-chain service record)."""

    input_price: int
    output_price: int


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ChatRequest:
    """The fields of an OpenAI chat completion body that billing depends on."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    stream: bool
    agent: int | None = None  # an AgentNFT token id to run, or None


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and check a chat completion body; raise ``InvalidChatRequest`` naming the problem."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidChatRequest(f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidChatRequest("request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidChatRequest("request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidChatRequest("'model' must be a non-empty string")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidChatRequest("'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) \
                or message.get("role") not in ("system", "user", "assistant"):
            raise InvalidChatRequest("each message needs a role (system/user/assistant) and text content")
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) \
            or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidChatRequest(f"'max_tokens' must be an integer from 1 to {MAX_TOKENS_LIMIT}")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidChatRequest("'stream' must be true or false")
    choices = data.get("n", 1)
    if isinstance(choices, bool) or choices != 1:
        raise InvalidChatRequest("'n' must be 1: a paid request asks for one answer")
    agent = data.get(AGENT_FIELD)
    if agent is not None and (isinstance(agent, bool) or not isinstance(agent, int) or not 0 <= agent < 2**256):
        raise InvalidChatRequest(f"'{AGENT_FIELD}' must be a token id (a non-negative integer)")
    if agent is not None and any(m["role"] == "system" for m in messages):
        raise InvalidChatRequest("a request for an agent carries no system message: the agent's prompt is the system message")
    return ChatRequest(model=model, messages=messages, max_tokens=max_tokens, stream=stream, agent=agent)


def compute_prompt_budget(own_prompt_tokens: int, chat: ChatRequest) -> int:
    """The prompt tokens a user signs for: its own count, plus the cap on an agent's hidden
    system prompt if the request runs an agent."""
    return own_prompt_tokens + (AGENT_PROMPT_MAX_TOKENS if chat.agent is not None else 0)


def is_agent_input_billable(billed_input_tokens: int, own_prompt_tokens: int) -> bool:
    """Whether an agent call's billed input fits what the user can bound: at least its own
    prompt, at most that plus ``AGENT_PROMPT_MAX_TOKENS``."""
    return own_prompt_tokens <= billed_input_tokens <= own_prompt_tokens + AGENT_PROMPT_MAX_TOKENS


def count_output_tokens(pieces: Sequence[str], count_tokens: Callable[[str], int]) -> int:
    """Output tokens of an answer: the sum of the tokens of each generated piece (content,
    reasoning, each tool call's arguments), every piece tokenized on its own."""
    if isinstance(pieces, str):
        raise TypeError("pieces must be a sequence of generated texts, not one string")
    return sum(count_tokens(piece) for piece in pieces)


def compute_usage(prompt_tokens: int, completion_tokens: int, max_tokens: int) -> Usage:
    """Billed usage: the prompt's tokens, and the answer's tokens capped at ``max_tokens``."""
    if prompt_tokens < 0 or completion_tokens < 0 or max_tokens < 1:
        raise ValueError("token counts must not be negative and max_tokens must be positive")
    return Usage(prompt_tokens, min(completion_tokens, max_tokens))


def compute_fee(usage: Usage, prices: Prices) -> int:
    """``input_tokens × input_price + output_tokens × output_price`` in neuron."""
    return usage.input_tokens * prices.input_price + usage.output_tokens * prices.output_price


def compute_max_fee(prompt_tokens: int, max_tokens: int, prices: Prices) -> int:
    """The worst-case fee of a request: every allowed output token is produced."""
    return compute_fee(Usage(prompt_tokens, max_tokens), prices)


@dataclass(frozen=True)
class Exposure:
    """What a provider has at stake with one user, in neuron.

    ``spendable``: sub-account balance minus the pending refund (on chain);
    ``settled``: the cumulative total already paid on chain;
    ``served``: cumulative fees of every answer served (settled or not);
    ``receipted``: the largest cumulative total the user has signed;
    ``inflight``: sum of the ``maxFee`` of admitted requests not answered yet.
    """

    spendable: int
    settled: int
    served: int
    receipted: int
    inflight: int


def validate_admission(exposure: Exposure, max_fee: int, credit: int) -> None:
    """Admit a request costing at most ``max_fee`` only if both hold:

    - funds: ``(served − settled) + inflight + max_fee ≤ spendable`` — everything the provider
      could claim is still in the sub-account (``AdmissionRefused("balance")``);
    - credit: ``(served − receipted) + inflight + max_fee ≤ credit`` — what the user has not
      yet receipted stays within the provider's risk bound (``AdmissionRefused("credit")``).
    """
    unsettled = max(0, exposure.served - exposure.settled)
    if unsettled + exposure.inflight + max_fee > exposure.spendable:
        raise AdmissionRefused(
            "balance",
            f"insufficient balance: sub-account has {exposure.spendable} neuron spendable, "
            f"{unsettled} unsettled, {exposure.inflight} reserved, request may cost {max_fee}",
        )
    unreceipted = max(0, exposure.served - exposure.receipted)
    if unreceipted + exposure.inflight + max_fee > credit:
        raise AdmissionRefused(
            "credit",
            f"too many unreceipted requests: {unreceipted} unreceipted + {exposure.inflight} "
            f"reserved + {max_fee} exceeds the provider's credit of {credit} neuron",
        )
