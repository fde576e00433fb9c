"""Pooled keep-alive HTTP/1.1 for the compute network's hot paths (aiohttp).

The broker talks to its model server and the user's proxy to brokers through a ``Pool``:
``post`` returns once the status line and headers are in; the body is then read whole
(``read``, capped at ``max_answer_bytes``) or piece by piece (``chunks``). ``close`` on an
answer not read to its end drops the connection instead of returning it to the pool: that is
how the other side learns its client left (llama-cpp-python's server checks after every
streamed chunk, a broker at once) and stops generating.

Why not httpx: measured against the benchmark's stub server (bench/RESULTS.md), httpx's
``AsyncClient`` costs ~1.1 ms of CPU per request, aiohttp's C parser ~0.25 ms.

Among strangers: a pool reaches only the addresses its ``AddressPolicy`` allows
(``zgos.runtime.outbound``: a provider's announced URL must not point the user's proxy at
their router or a service on their laptop); the check runs on every resolved address, so a
name that resolves to a refused address is refused too. A request may carry its own total
deadline and answer cap (``timeout_s``, ``max_bytes``): a provider that trickles or sends an
endless body costs at most those.

Errors: ``PoolTimeout`` (no byte for ``timeout_s``, no connection within
``connect_timeout_s``, or past a request's total deadline), ``PoolTooLarge`` (past the answer
cap), ``PoolError`` for everything else (refused by the policy, refused, reset, malformed).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy, compute_address_class
from zgos.runtime.logs import log_connection

MAX_CONNECTIONS = 64
# Idle pooled connections are dropped after this long, below the 5 s after which uvicorn (the
# llama.cpp server, our brokers) closes an idle keep-alive connection: reusing one the other side
# is closing at that moment fails the request with ServerDisconnectedError.
IDLE_KEEPALIVE_S = 2.0
MAX_ANSWER_BYTES = 16 << 20  # a 4,096-token stream is ~1.5 MiB of SSE


class PoolError(Exception):
    """The other side could not be reached, broke off, or sent too much."""


class PoolTimeout(PoolError):
    pass


class PoolTooLarge(PoolError):
    pass


class _GuardedConnector(aiohttp.TCPConnector):
    """A connector that connects only to addresses ``policy`` allows, and records each new
    connection in the connection log (``zgos.runtime.logs``)."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        resolved = await super()._resolve_host(host, port, traces=traces)
        allowed = [r for r in resolved if self._policy.refusal(ipaddress.ip_address(r["host"])) is None]
        if not allowed:
            kinds = sorted({compute_address_class(ipaddress.ip_address(r["host"])) for r in resolved})
            raise PoolError(f"refused to connect to {host}: it is a {'/'.join(kinds)} address "
                            f"(allowed: {', '.join(self._policy.allowed_classes())})")
        return allowed

    async def _create_connection(self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout
                                 ) -> Any:
        protocol = await super()._create_connection(req, traces, timeout)
        transport = getattr(protocol, "transport", None)
        peer = transport.get_extra_info("peername") if transport is not None else None
        log_connection(f"{req.url.raw_host}:{req.url.port}", str(peer[0]) if peer else "?")
        return protocol


class Answer:
    """One HTTP answer: its status and headers, then its body."""

    def __init__(self, response: aiohttp.ClientResponse, max_bytes: int, timeout: str) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._timeout = timeout  # what a timeout means here, for the error
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
        return bytes(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``PoolError`` if it breaks off or grows too large."""
        size = 0
        try:
            async for chunk in self._response.content.iter_any():
                size += len(chunk)
                if size > self._max_bytes:
                    raise PoolTooLarge(f"the answer is larger than {self._max_bytes} bytes")
                yield chunk
        except TimeoutError:
            raise PoolTimeout(f"the answer was not complete {self._timeout}") from None
        except aiohttp.ClientError as exc:
            raise PoolError(f"the other side broke off ({type(exc).__name__})") from None
        self._response.release()

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it."""
        self._response.close()


class Pool:
    """Keep-alive connections to any number of hosts, created on first use inside the
    serving event loop."""

    def __init__(self, *, timeout_s: float, connect_timeout_s: float,
                 max_answer_bytes: int = MAX_ANSWER_BYTES, policy: AddressPolicy = OPEN_POLICY) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=timeout_s)
        self._max_bytes = max_answer_bytes
        self._policy = policy
        self._session: aiohttp.ClientSession | None = None

    def _now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=_GuardedConnector(self._policy, limit=MAX_CONNECTIONS, keepalive_timeout=IDLE_KEEPALIVE_S),
                timeout=self._timeout,
                auto_decompress=False, skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
                      max_bytes: int | None = None) -> Answer:
        """Send a request; return when the status and headers have arrived (a ``timeout_s``
        bounds the whole exchange, body included; ``max_bytes`` caps this answer)."""
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self._timeout.sock_connect,
                                                     sock_read=self._timeout.sock_read)
        try:
            response = await self._now().request(method, url, data=body, headers=headers, **extra)
        except TimeoutError:
            raise PoolTimeout(f"{url} did not answer within {timeout_s if timeout_s is not None else self._timeout.sock_read:g} s") from None
        except aiohttp.ClientError as exc:
            raise PoolError(f"cannot reach {url} ({type(exc).__name__})") from None
        cap = self._max_bytes if max_bytes is None else max_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            response.close()
            raise PoolTooLarge(f"{url} announced an answer of {length} bytes, larger than the cap of {cap}")
        timeout = f"within {timeout_s:g} s" if timeout_s is not None else \
            f"(no byte for {self._timeout.sock_read:g} s)"
        return Answer(response, cap, timeout)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float | None = None,
                   max_bytes: int | None = None) -> Answer:
        return await self.request("POST", url, body=body, headers=headers, timeout_s=timeout_s, max_bytes=max_bytes)

    async def post_json(self, url: str, value: Any, *, timeout_s: float) -> tuple[int, bytes]:
        """POST ``value`` as JSON and read the whole answer within ``timeout_s``."""
        answer = await self.request("POST", url, body=json.dumps(value).encode(),
                                    headers={"content-type": "application/json"}, timeout_s=timeout_s)
        try:
            return answer.status, await answer.read()
        finally:
            answer.close()

    async def get(self, url: str, *, timeout_s: float) -> tuple[int, bytes]:
        """GET ``url`` and read the whole answer within ``timeout_s``."""
        answer = await self.request("GET", url, timeout_s=timeout_s)
        try:
            return answer.status, await answer.read()
        finally:
            answer.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
