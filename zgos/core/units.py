"""Amounts of the native token (called 0G in the UI; 1 0G = 10**18 neuron, like ether/wei)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

NEURON_PER_0G = 10**18
DECIMALS = 18

_SUFFIXES = {"0g": NEURON_PER_0G, "og": NEURON_PER_0G, "ether": NEURON_PER_0G,
             "gwei": 10**9, "neuron": 1, "wei": 1}


def parse_amount(text: str) -> int:
    """Parse ``"1.5"``, ``"1.5 0G"``, ``"20 gwei"`` or ``"123 neuron"`` into neurons.

    A bare number is in 0G. Raises ``ValueError`` for anything else, negative amounts, or
    amounts finer than one neuron.
    """
    cleaned = text.strip().lower().replace("_", "")
    unit = NEURON_PER_0G
    for suffix, scale in _SUFFIXES.items():
        if cleaned.endswith(suffix) and cleaned[: -len(suffix)].strip():
            cleaned, unit = cleaned[: -len(suffix)].strip(), scale
            break
    try:
        with localcontext() as exact:
            exact.prec = 100  # far beyond any real amount, so the product is exact
            value = Decimal(cleaned) * unit
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r} (try '1.5', '1.5 0G' or '20 gwei')") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    if value < 0:
        raise ValueError(f"amount must not be negative: {text!r}")
    if value != value.to_integral_value():
        raise ValueError(f"amount is finer than one neuron: {text!r}")
    return int(value)


def format_amount(neurons: int, places: int = 6) -> str:
    """Render neurons as ``"1.5 0G"``, trimmed to at most ``places`` decimals."""
    whole, fraction = divmod(neurons, NEURON_PER_0G)
    digits = f"{fraction:0{DECIMALS}d}"[:places].rstrip("0")
    return f"{whole}.{digits} 0G" if digits else f"{whole} 0G"
