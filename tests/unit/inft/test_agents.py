"""The layout of an agent's data items (zgos.inft.spec.agents; issue 16 §5, §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.inft.spec.agents import (
    ADAPTER_TAG,
    InvalidAgent,
    compute_agent_layout,
    describe_adapter,
    is_adapter_description,
    parse_tuned_model,
)

PLAIN = st.text(max_size=40).filter(lambda d: not is_adapter_description(d))


@given(st.none() | st.binary(min_size=32, max_size=32))
def test_an_adapter_description_names_its_tuned_model_and_parses_back(model: bytes | None) -> None:
    description = describe_adapter(model)
    assert is_adapter_description(description)
    assert parse_tuned_model(description) == model


@given(PLAIN, st.lists(PLAIN, max_size=4), st.integers(min_value=0, max_value=4), st.binary(min_size=32, max_size=32))
def test_the_prompt_is_item_0_and_the_one_adapter_is_found_wherever_it_is(
        prompt: str, others: list[str], at: int, model: bytes) -> None:
    descriptions = [prompt, *others]
    index = 1 + min(at, len(others))
    descriptions.insert(index, describe_adapter(model))
    layout = compute_agent_layout(descriptions)
    assert (layout.prompt_index, layout.adapter_index, layout.tuned_model) == (0, index, model)


@given(PLAIN, st.lists(PLAIN, max_size=4))
def test_an_agent_without_an_adapter_is_a_prompt(prompt: str, others: list[str]) -> None:
    layout = compute_agent_layout([prompt, *others])
    assert (layout.adapter_index, layout.tuned_model) == (None, None)


@pytest.mark.parametrize("descriptions, reason", [
    ([], "no data"),
    ([ADAPTER_TAG, "prompt"], "item 0"),
    (["prompt", ADAPTER_TAG, describe_adapter(b"\x01" * 32)], "at most one adapter"),
    (["prompt", f"{ADAPTER_TAG} tuned-model=0x1234"], "32-byte"),
    (["prompt", f"{ADAPTER_TAG} tuned-model=0x{'zz' * 32}"], "32-byte"),
    (["prompt", f"{ADAPTER_TAG} tuned-model={'ab' * 32}"], "32-byte"),
])
def test_a_token_that_is_not_an_agent_is_refused_with_the_rule_it_breaks(descriptions: list[str], reason: str) -> None:
    with pytest.raises(InvalidAgent, match=reason):
        compute_agent_layout(descriptions)


def test_a_model_id_of_the_wrong_size_cannot_be_described() -> None:
    with pytest.raises(InvalidAgent):
        describe_adapter(b"\x01" * 31)


def test_words_that_merely_start_like_the_tag_are_not_adapters() -> None:
    assert not is_adapter_description("loraxx")
    assert not is_adapter_description("system-prompt")
    assert is_adapter_description(f"{ADAPTER_TAG} made by task 3")
