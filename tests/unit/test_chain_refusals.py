"""How the chain client reads an EVM node's refusal of a signed transaction
(``zgos.chain.client.classify_refusal``): the wording geth and anvil use, case-insensitive."""

from __future__ import annotations

import pytest

from zgos.chain.client import SendRefusal, classify_refusal


@pytest.mark.parametrize(("message", "refusal"), [
    ("nonce too low: next nonce 5, tx nonce 4", SendRefusal.NONCE),
    ("Nonce too high", SendRefusal.NONCE),
    ("replacement transaction underpriced", SendRefusal.UNDERPRICED),
    ("already known", SendRefusal.UNDERPRICED),
    ("Insufficient funds for gas * price + value", SendRefusal.INSUFFICIENT_FUNDS),
    ("{'code': -32003, 'message': 'insufficient funds for transfer'}", SendRefusal.INSUFFICIENT_FUNDS),
    ("execution reverted", SendRefusal.OTHER),
    ("", SendRefusal.OTHER),
])
def test_a_node_refusal_is_classified_by_its_wording(message: str, refusal: SendRefusal) -> None:
    assert classify_refusal(message) is refusal
