"""The JSON-RPC transport under ``Chain``: HTTP that waits out an RPC provider's rate limit.

Public RPC endpoints (0G's Galileo RPC, hosted providers) refuse bursts: with HTTP 429 (or 503)
and perhaps a ``Retry-After`` header, or with a JSON-RPC error (EIP-1474's ``-32005`` "limit
exceeded", or a message saying "rate limit" / "too many requests"). A refused request was not
processed, so it is sent again after a backoff, doubling from ``BACKOFF_BASE_S`` up to
``BACKOFF_MAX_S`` per wait (or what ``Retry-After`` asks, capped alike), at most
``MAX_RATE_RETRIES`` times: then the refusal surfaces. Reads also survive a dropped connection
(the methods web3 lists as safe to repeat); a send that lost its connection is not repeated here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from web3 import HTTPProvider
from web3.providers.rpc.utils import check_if_retry_on_failure
from web3.types import RPCEndpoint, RPCResponse

from zgos.core.errors import RpcUnreachable
from zgos.runtime.logs import log_connection

log = logging.getLogger(__name__)

RATE_LIMIT_HTTP_STATUSES = frozenset({429, 503})
RATE_LIMIT_RPC_CODES = frozenset({-32005, -32029})  # EIP-1474 limit exceeded; some providers' 429
RATE_LIMIT_WORDS = ("rate limit", "too many requests", "exceeded the limit", "request limit")
MAX_RATE_RETRIES = 8
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0
READ_RETRIES = 5  # a dropped connection on a read (web3's own default)


def is_rate_limit_error(error: Mapping[str, Any]) -> bool:
    """Whether a JSON-RPC ``error`` object says the caller sent too much, not that the call is bad."""
    message = str(error.get("message", "")).lower()
    return error.get("code") in RATE_LIMIT_RPC_CODES or any(word in message for word in RATE_LIMIT_WORDS)


def compute_backoff_s(attempt: int, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``Retry-After`` seconds if the
    server gave them, else ``BACKOFF_BASE_S * 2**attempt``; never more than ``BACKOFF_MAX_S``."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), BACKOFF_MAX_S)
        except ValueError:
            pass  # an HTTP date: use our own backoff
    return float(min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S))


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with the module's retry rules (``sleep`` is injectable for tests)."""

    def __init__(self, endpoint_uri: str, *, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        # web3's validation asks eth_chainId before every call and transaction (two extra round
        # trips per eth_call); an endpoint's chain id does not change, so it is asked once.
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None,
                         cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")})
        self._sleep = sleep
        log_connection(endpoint_uri, endpoint_uri)
        self.rate_limited = 0  # refusals waited out so far (reported in tests and logs)

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        """The POST, retried by the rules above; ``RpcUnreachable`` when it still fails (web3
        would let the transport's own exception through, which callers that retry on a
        ``ZgError`` do not expect)."""
        try:
            return self._post_with_retries(method, request_data)
        except requests.RequestException as exc:
            status = exc.response.status_code if exc.response is not None else None
            cause = f"HTTP {status}" if status is not None else type(exc).__name__
            raise RpcUnreachable(f"cannot reach the chain RPC at {self.endpoint_uri} ({cause})", cause) from None

    def _post_with_retries(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        assert self.endpoint_uri is not None  # set by the constructor
        dropped = 0
        for attempt in range(MAX_RATE_RETRIES + 1):
            try:
                return self._request_session_manager.make_post_request(
                    self.endpoint_uri, request_data, **self.get_request_kwargs())
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in RATE_LIMIT_HTTP_STATUSES or attempt == MAX_RATE_RETRIES:
                    raise
                retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
                self._wait(method, attempt, f"HTTP {status}", retry_after)
            except (requests.ConnectionError, requests.Timeout):
                dropped += 1
                if dropped >= READ_RETRIES or not check_if_retry_on_failure(method):
                    raise
                self._sleep(compute_backoff_s(dropped - 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        for attempt in range(MAX_RATE_RETRIES + 1):
            response = super().make_request(method, params)
            error = response.get("error")
            if not isinstance(error, Mapping) or not is_rate_limit_error(error) or attempt == MAX_RATE_RETRIES:
                return response
            self._wait(method, attempt, str(error.get("message", "")), None)
        raise AssertionError("unreachable")

    def _wait(self, method: str, attempt: int, why: str, retry_after: str | None) -> None:
        delay = compute_backoff_s(attempt, retry_after)
        self.rate_limited += 1
        log.info("the RPC rate-limited %s (%s): retrying in %.2f s", method, why, delay)
        self._sleep(delay)
