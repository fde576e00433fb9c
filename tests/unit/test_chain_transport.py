"""The retry rules of the chain's JSON-RPC transport and the send fallback (pure parts)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zgos.chain.client import is_unknown_method
from zgos.chain.transport import BACKOFF_MAX_S, compute_backoff_s, is_rate_limit_error


@given(st.integers(0, 64))
def test_backoff_doubles_and_stays_bounded(attempt: int) -> None:
    delay = compute_backoff_s(attempt)
    assert 0 < delay <= BACKOFF_MAX_S
    assert compute_backoff_s(attempt + 1) >= delay


def test_backoff_follows_retry_after_seconds_within_the_bound() -> None:
    assert compute_backoff_s(0, "2") == 2.0
    assert compute_backoff_s(0, "3600") == BACKOFF_MAX_S
    assert compute_backoff_s(3, "Wed, 21 Oct 2015 07:28:00 GMT") == compute_backoff_s(3)


def test_rate_limit_errors_are_told_from_bad_calls() -> None:
    assert is_rate_limit_error({"code": -32005, "message": "limit exceeded"})
    assert is_rate_limit_error({"code": -32000, "message": "Too Many Requests, slow down"})
    assert not is_rate_limit_error({"code": -32000, "message": "nonce too low"})
    assert not is_rate_limit_error({"code": 3, "message": "execution reverted"})


def test_a_node_without_sync_send_is_recognised_however_it_words_it() -> None:
    assert is_unknown_method({"code": -32601, "message": "Method not found"})
    assert is_unknown_method({"code": -32000, "message": "the method eth_sendRawTransactionSync does not exist/is not available"})
    assert not is_unknown_method({"code": -32000, "message": "insufficient funds for gas * price + value"})
