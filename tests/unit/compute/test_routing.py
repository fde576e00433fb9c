"""Routing preferences of a chat request (zgos.compute.spec.routing; issue 17 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec.routing import (
    MAX_FALLBACK_MODELS,
    InvalidRouting,
    RoutingPreferences,
    order_providers,
    parse_models,
    parse_preferences,
)

ADDRESSES = st.lists(st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()), min_size=0, max_size=8,
                     unique=True)


@given(ADDRESSES, st.sampled_from([None, "price", "latency", "score"]), st.data())
def test_ordering_is_a_stable_permutation_that_puts_the_sorted_key_first(
        providers: list[str], sort: str | None, data: st.DataObject) -> None:
    price = {p: data.draw(st.integers(0, 5)) for p in providers}
    latency = {p: data.draw(st.none() | st.floats(0, 10)) for p in providers}
    score = {p: data.draw(st.integers(-100, 100)) for p in providers}
    ordered = order_providers(providers, sort, price.__getitem__, latency.__getitem__, score.__getitem__)
    assert sorted(ordered) == sorted(providers)
    keys = {"price": lambda p: price[p], "score": lambda p: -score[p],
            "latency": lambda p: (latency[p] is None, latency[p] or 0.0), None: providers.index}
    assert [keys[sort](p) for p in ordered] == sorted(keys[sort](p) for p in providers)
    ties = [p for p in ordered if keys[sort](p) == keys[sort](ordered[0])] if ordered else []
    assert ties == [p for p in providers if p in ties], "ties keep the router's order"


@given(ADDRESSES, ADDRESSES, st.none() | st.integers(0, 10), st.integers(0, 10), st.integers(0, 10))
def test_a_provider_is_admitted_only_within_only_outside_ignore_and_under_max_price(
        only: list[str], ignore: list[str], max_price: int | None, input_price: int, output_price: int) -> None:
    preferences = parse_preferences({"only": only or None, "ignore": ignore, "max_price": max_price})
    for provider in set(only) | set(ignore) | {"0x" + "ab" * 20}:
        admitted = preferences.admits(provider.upper().replace("0X", "0x"), input_price, output_price)
        expected = ((not only or provider in only) and provider not in ignore
                    and (max_price is None or max(input_price, output_price) <= max_price))
        assert admitted == expected


@pytest.mark.parametrize("value, field", [
    ([], "object"),
    ({"sort": "fastest"}, "sort"),
    ({"max_price": -1}, "max_price"),
    ({"max_price": True}, "max_price"),
    ({"max_price": "1"}, "max_price"),
    ({"only": "0x" + "00" * 20}, "only"),
    ({"ignore": ["not an address"]}, "ignore"),
    ({"only": ["0x" + "00" * 20] * 65}, "only"),
    ({"allow_fallbacks": False}, "unknown fields"),
])
def test_malformed_preferences_are_refused_naming_the_field(value: object, field: str) -> None:
    with pytest.raises(InvalidRouting, match=field):
        parse_preferences(value)


def test_no_preferences_admit_everyone_in_the_routers_order() -> None:
    assert parse_preferences(None) == RoutingPreferences()
    assert order_providers(["0xb", "0xa"], None, len, lambda p: None, len) == ["0xb", "0xa"]


def test_models_are_tried_model_first_then_the_fallbacks_once_each() -> None:
    assert parse_models("a", ["b", "a", "c"]) == ["a", "b", "c"]
    assert parse_models(None, ["b"]) == ["b"]
    for model, models in ((None, None), (None, []), ("a", "b"), ("a", [""]), ("a", [1]),
                          ("a", ["m"] * (MAX_FALLBACK_MODELS + 1))):
        with pytest.raises(InvalidRouting):
            parse_models(model, models)
