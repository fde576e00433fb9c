"""The broker's client to its model server: pooled keep-alive HTTP/1.1 (aiohttp).

One ``Upstream`` per broker. ``open`` posts a chat body and returns once the status line and
headers are in; the body is then read whole (``read``) or piece by piece (``chunks``).
``close`` on an answer not read to its end drops the connection instead of returning it to
the pool: that is how the model server learns the client left and stops generating
(llama-cpp-python's server checks for a disconnect after every streamed chunk).

Measured on the benchmark's stub upstream (bench/RESULTS.md): aiohttp's C parser costs
~0.25 ms of CPU per request where httpx costs ~1.1 ms.

Errors: ``UpstreamTimeout`` (no byte for ``timeout_s``, or no connection within
``connect_timeout_s``) and ``UpstreamUnreachable`` (refused, reset, malformed, too large).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

CHAT_PATH = "/v1/chat/completions"
MAX_CONNECTIONS = 64
MAX_ANSWER_BYTES = 16 << 20  # a 4,096-token stream is ~1.5 MiB of SSE
HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


class UpstreamError(Exception):
    """The model server could not be reached or broke off."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamAnswer:
    """One answer of the model server: its status, then its body."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    async def read(self) -> bytes:
        """The whole body (at most ``MAX_ANSWER_BYTES``); the connection goes back to the pool."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
        return bytes(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``UpstreamError`` if it breaks off or grows too large."""
        size = 0
        try:
            async for chunk in self._response.content.iter_any():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise UpstreamUnreachable(f"the model server's answer exceeds {MAX_ANSWER_BYTES} bytes")
                yield chunk
        except TimeoutError:
            raise UpstreamTimeout("the model server stopped sending") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"the model server broke off ({type(exc).__name__})") from None
        self._response.release()

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it (the model
        server sees the disconnect and stops generating)."""
        self._response.close()


class Upstream:
    """A keep-alive connection pool to one model server."""

    def __init__(self, base_url: str, *, timeout_s: float, connect_timeout_s: float) -> None:
        self.url = base_url.rstrip("/") + CHAT_PATH
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the serving event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS), timeout=self._timeout,
                auto_decompress=False, skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def open(self, body: bytes) -> UpstreamAnswer:
        """POST ``body``; return when the status and headers have arrived."""
        try:
            response = await self._session_now().post(self.url, data=body, headers=HEADERS)
        except TimeoutError:
            raise UpstreamTimeout("the model server did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"the model server is unreachable ({type(exc).__name__})") from None
        return UpstreamAnswer(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
