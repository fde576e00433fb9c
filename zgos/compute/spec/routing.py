"""A chat request's routing preferences, in OpenRouter's shape (issue 17 §3).

The OpenAI SDK passes them with ``extra_body``; the local proxy reads and strips them before the
body is signed (providers never see them):

- ``provider``: ``{"sort": "price" | "latency" | "score", "max_price": N, "only": [addresses],
  "ignore": [addresses]}``. ``max_price`` is neuron per token (input and output both at most
  it), ``only`` keeps just those providers, ``ignore`` drops those; ``sort`` orders the rest
  (cheapest first, fastest measured first, best auditors' score first). Healthy providers still
  come before backed-off ones whatever the sort;
- ``models``: models to try in order when no provider of the one before answers (``model``,
  when given, is tried first).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

SORTS = ("price", "latency", "score")
MAX_LISTED_PROVIDERS = 64
MAX_FALLBACK_MODELS = 8
MAX_MODEL_NAME_CHARS = 256
ADDRESS_CHARS = 42
PROVIDER_FIELD = "provider"
MODELS_FIELD = "models"


class InvalidRouting(ValueError):
    """The routing preferences are malformed (the message says which field)."""


@dataclass(frozen=True)
class RoutingPreferences:
    sort: str | None = None
    max_price: int | None = None
    only: frozenset[str] | None = None  # lower-case addresses
    ignore: frozenset[str] = frozenset()

    def admits(self, provider: str, input_price: int, output_price: int) -> bool:
        """The provider may serve this request under these preferences."""
        key = provider.lower()
        if (self.only is not None and key not in self.only) or key in self.ignore:
            return False
        return self.max_price is None or (input_price <= self.max_price and output_price <= self.max_price)


def _addresses(value: Any, name: str) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > MAX_LISTED_PROVIDERS:
        raise InvalidRouting(f"provider.{name} must be a list of at most {MAX_LISTED_PROVIDERS} addresses")
    if not all(isinstance(a, str) and len(a) == ADDRESS_CHARS and a.startswith("0x") for a in value):
        raise InvalidRouting(f"provider.{name} holds something that is not a 0x address")
    return frozenset(a.lower() for a in value)


def parse_preferences(value: Any) -> RoutingPreferences:
    """The ``provider`` object of a request; raise ``InvalidRouting`` naming a bad field."""
    if value is None:
        return RoutingPreferences()
    if not isinstance(value, dict):
        raise InvalidRouting("provider must be an object")
    unknown = set(value) - {"sort", "max_price", "only", "ignore"}
    if unknown:
        raise InvalidRouting(f"provider has unknown fields: {', '.join(sorted(unknown))}")
    sort = value.get("sort")
    if sort is not None and sort not in SORTS:
        raise InvalidRouting(f"provider.sort must be one of {', '.join(SORTS)}")
    max_price = value.get("max_price")
    if max_price is not None and (isinstance(max_price, bool) or not isinstance(max_price, int) or max_price < 0):
        raise InvalidRouting("provider.max_price must be a whole number of neuron per token, 0 or more")
    only = _addresses(value["only"], "only") if value.get("only") is not None else None
    ignore = _addresses(value["ignore"], "ignore") if value.get("ignore") is not None else frozenset()
    return RoutingPreferences(sort, max_price, only, ignore)


def parse_models(model: Any, models: Any) -> list[str]:
    """The models to try, in order: ``model`` first, then ``models`` (duplicates dropped)."""
    if models is None:
        models = []
    if not isinstance(models, list) or len(models) > MAX_FALLBACK_MODELS:
        raise InvalidRouting(f"models must be a list of at most {MAX_FALLBACK_MODELS} model names")
    names = ([model] if model is not None else []) + models
    if not names:
        raise InvalidRouting("give a model (or models)")
    if not all(isinstance(n, str) and 0 < len(n) <= MAX_MODEL_NAME_CHARS for n in names):
        raise InvalidRouting("each model is a non-empty name")
    return list(dict.fromkeys(names))


def order_providers(providers: Sequence[str], sort: str | None, price: Callable[[str], int],
                    latency: Callable[[str], float | None], score: Callable[[str], int]) -> list[str]:
    """``providers`` (already in health-then-price order) re-ordered by ``sort``; stable, so
    ties keep the router's order. A provider never measured sorts after the measured ones."""
    if sort == "price":
        return sorted(providers, key=price)
    if sort == "latency":
        return sorted(providers, key=lambda p: (latency(p) is None, latency(p) or 0.0))
    if sort == "score":
        return sorted(providers, key=lambda p: -score(p))
    return list(providers)
