"""The JSON-RPC transport under ``Chain``: HTTP that waits out an RPC provider's rate limit.

Public RPC endpoints (0G's Galileo RPC, hosted providers) refuse bursts: with HTTP 429 (or 503)
and perhaps a ``Retry-After`` header, or with a JSON-RPC error (EIP-1474's ``-32005`` "limit
exceeded", or a message saying "rate limit" / "too many requests"). A refused request was not
processed, so it is sent again after a backoff, doubling from ``BACKOFF_BASE_S`` up to
``BACKOFF_MAX_S`` per wait (or what ``Retry-After`` asks, capped alike), at most
``MAX_RATE_RETRIES`` times: then the refusal surfaces. Reads also survive a dropped connection
(the methods web3 lists as safe to repeat); a send that lost its connection is not repeated here.

The POSTs go over one kept-alive ``http.client`` connection per thread (``KeptAlivePost``), not
web3's ``requests`` session: a call then costs the caller about a sixth of the CPU (0.18 vs 1.16 ms
measured against anvil), and services ask the chain several times a second.
"""

from __future__ import annotations

import base64
import http.client
import logging
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
from web3 import HTTPProvider, Web3
from web3._utils.batching import sort_batch_response_by_response_ids
from web3.providers.rpc.utils import check_if_retry_on_failure
from web3.types import RPCEndpoint, RPCResponse

from zgos.core.errors import ChainError, RpcUnreachable
from zgos.runtime.logs import log_connection

log = logging.getLogger(__name__)

RATE_LIMIT_HTTP_STATUSES = frozenset({429, 503})
RATE_LIMIT_RPC_CODES = frozenset({-32005, -32029})  # EIP-1474 limit exceeded; some providers' 429
RATE_LIMIT_WORDS = ("rate limit", "too many requests", "exceeded the limit", "request limit")
MAX_RATE_RETRIES = 8
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0
READ_RETRIES = 5  # a dropped connection on a read (web3's own default)
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # an answer larger than this is refused, not buffered


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


class KeptAlivePost:
    """POSTs to one URL over a kept-alive connection per thread, through the proxy the
    environment names for it (as ``requests`` would). As urllib3 does, a kept connection the
    server closed meanwhile is replaced before a request is written to it, not after it failed."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChainError(f"not an HTTP(S) RPC URL: {url!r}")
        self.https, self.host, self.timeout_s = parts.scheme == "https", parts.hostname, timeout_s
        self.port = parts.port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = dict(headers)
        if parts.username is not None:  # https://user:password@host/ means HTTP basic auth
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        proxy = urllib.request.getproxies().get(parts.scheme)
        self.proxy = urlsplit(proxy) if proxy and not urllib.request.proxy_bypass(self.host) else None
        if self.proxy is not None and not self.https:
            self.target = url  # a plain-HTTP proxy takes the whole URL
        # one TLS context for every connection: loading the CA bundle costs milliseconds
        self.tls = ssl.create_default_context(cafile=certifi.where()) if self.https else None
        self._local = threading.local()

    def post(self, body: bytes) -> tuple[int, str | None, bytes]:
        """The status, ``Retry-After`` header and body of one POST of ``body``; ``OSError`` or
        ``http.client.HTTPException`` when the connection fails."""
        connection = self._connection()
        try:
            connection.request("POST", self.target, body, self.headers)
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
        except BaseException:
            self._drop()
            raise
        if response.will_close or len(data) > MAX_RESPONSE_BYTES:
            self._drop()
        if len(data) > MAX_RESPONSE_BYTES:
            raise ChainError(f"the chain RPC answered more than {MAX_RESPONSE_BYTES} bytes")
        return response.status, response.getheader("retry-after"), data

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None and _closed_by_peer(connection.sock):
            self._drop()
            connection = None
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def _connect(self) -> http.client.HTTPConnection:
        host, port = (self.proxy.hostname or "", self.proxy.port or 80) if self.proxy else (self.host, self.port)
        if self.tls is None:
            return http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        connection = http.client.HTTPSConnection(host, port, timeout=self.timeout_s, context=self.tls)
        if self.proxy is not None:
            connection.set_tunnel(self.host, self.port)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle kept-alive connection became readable: the server closed it (or sent
    something unasked), so it must not carry another request."""
    return bool(select.select([sock], [], [], 0)[0])


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with the module's retry rules (``sleep`` is injectable for tests)."""

    def __init__(self, endpoint_uri: str, *, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        # An endpoint's chain id does not change, so it is asked once (web3 asks it before signing
        # and, with the validation middleware ``connect_web3`` removes, before every eth_call).
        super().__init__(endpoint_uri, exception_retry_configuration=None,
                         cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")})
        self._sleep = sleep
        self._post = KeptAlivePost(endpoint_uri, self.get_request_headers(), timeout_s)
        log_connection(endpoint_uri, endpoint_uri)
        self.rate_limited = 0  # refusals waited out so far (reported in tests and logs)

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        """The POST, retried by the rules above; ``RpcUnreachable`` when it still fails (web3
        would let the transport's own exception through, which callers that retry on a
        ``ZgError`` do not expect)."""
        dropped, attempt = 0, 0
        while True:
            try:
                status, retry_after, body = self._post.post(request_data)
            except (OSError, http.client.HTTPException) as exc:
                dropped += 1
                if dropped >= READ_RETRIES or not check_if_retry_on_failure(method):
                    raise self._unreachable("Timeout" if isinstance(exc, TimeoutError) else "ConnectionError") from None
                self._sleep(compute_backoff_s(dropped - 1))
                continue
            if status < 400:
                return body
            if status not in RATE_LIMIT_HTTP_STATUSES or attempt == MAX_RATE_RETRIES:
                raise self._unreachable(f"HTTP {status}")
            self._wait(method, attempt, f"HTTP {status}", retry_after)
            attempt += 1

    def _unreachable(self, cause: str) -> RpcUnreachable:
        return RpcUnreachable(f"cannot reach the chain RPC at {self.endpoint_uri} ({cause})", cause)

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        """web3's batch (one POST of many calls), sent like every other request (web3 would send
        it through its own ``requests`` session)."""
        request_data = self.encode_batch_rpc_request(batch_requests)
        response = self.decode_rpc_response(self._make_request(RPCEndpoint("batch"), request_data))
        return sort_batch_response_by_response_ids(response) if isinstance(response, list) else response

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


def connect_web3(rpc_url: str, timeout_s: float) -> Web3:
    """web3 on ``RetryingHTTPProvider``, without web3's ``validation`` middleware: before every
    ``eth_call`` and gas estimate it asks ``eth_chainId`` through the whole request stack (half
    of such a call's CPU, 0.65 of 1.3 ms) to check a transaction's chain id that ``Chain`` takes
    from the connected chain itself (the node checks a signed transaction's chain id again)."""
    w3 = Web3(RetryingHTTPProvider(rpc_url, timeout_s=timeout_s))
    w3.middleware_onion.remove("validation")
    return w3
