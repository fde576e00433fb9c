"""What an agent token's data items are, as a sealed executor runs them (issue 16 §5, §6).

An agent's ``IntelligentData`` items are read in order:

* item 0 is its **system prompt**, UTF-8 text (any description);
* an item whose description starts with ``ADAPTER_TAG`` is a **LoRA adapter** in GGUF for the
  model the executor serves. Its description may name the tuned model it was made by, as
  ``lora tuned-model=0x<64 hex>``: the ``ModelRegistry`` id of a fine-tuning task's model, so
  the lineage graph can continue from the agent to that model, its task and its dataset. The
  name is the minter's declaration; the sealed adapter bytes are not compared with the task's
  deliverable (system.md §5.3: only the data hash is public).

At most one adapter per agent; any other items are carried but not run.
"""

from __future__ import annotations

from dataclasses import dataclass

ADAPTER_TAG = "lora"
TUNED_MODEL_FIELD = "tuned-model="
MODEL_ID_BYTES = 32
PROMPT_INDEX = 0


class InvalidAgent(ValueError):
    """The token's data items do not form an agent (the message says which rule failed)."""


@dataclass(frozen=True)
class AgentLayout:
    """Which data items of a token an executor runs."""

    prompt_index: int
    adapter_index: int | None
    tuned_model: bytes | None  # declared ModelRegistry id of the adapter's tuned model


def describe_adapter(tuned_model: bytes | None = None) -> str:
    """The description of an adapter item, naming ``tuned_model`` when given."""
    if tuned_model is None:
        return ADAPTER_TAG
    if len(tuned_model) != MODEL_ID_BYTES:
        raise InvalidAgent(f"a model id is {MODEL_ID_BYTES} bytes, got {len(tuned_model)}")
    return f"{ADAPTER_TAG} {TUNED_MODEL_FIELD}0x{tuned_model.hex()}"


def is_adapter_description(description: str) -> bool:
    return description == ADAPTER_TAG or description.startswith(ADAPTER_TAG + " ")


def parse_model_id(text: str) -> bytes:
    """A model id written as ``0x`` and 64 hex digits; raise ``InvalidAgent`` otherwise."""
    if not text.startswith("0x") or len(text) != 2 + 2 * MODEL_ID_BYTES:
        raise InvalidAgent(f"{text!r} is not a 32-byte 0x model id")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidAgent(f"{text!r} is not a 32-byte 0x model id") from None


def parse_tuned_model(description: str) -> bytes | None:
    """The tuned model an adapter item's description names, or None; raise ``InvalidAgent``
    for a ``tuned-model=`` field that is not a 32-byte 0x id."""
    for word in description.split()[1:]:
        if word.startswith(TUNED_MODEL_FIELD):
            return parse_model_id(word.removeprefix(TUNED_MODEL_FIELD))
    return None


def compute_agent_layout(descriptions: list[str]) -> AgentLayout:
    """The layout of a token whose items carry ``descriptions``; raise ``InvalidAgent`` if it
    has no items, if item 0 is an adapter, or if it has more than one adapter."""
    if not descriptions:
        raise InvalidAgent("the token carries no data")
    adapters = [i for i, d in enumerate(descriptions) if is_adapter_description(d)]
    if PROMPT_INDEX in adapters:
        raise InvalidAgent("item 0 must be the agent's system prompt, not an adapter")
    if len(adapters) > 1:
        raise InvalidAgent(f"an agent has at most one adapter; items {adapters} are adapters")
    if not adapters:
        return AgentLayout(PROMPT_INDEX, None, None)
    return AgentLayout(PROMPT_INDEX, adapters[0], parse_tuned_model(descriptions[adapters[0]]))
