"""Zero-copy response bodies on the hardened uvicorn/h11 server (``zgos.runtime.serve``).

An app that finds ``http.response.zerocopysend`` in ``scope["extensions"]`` may send part of its
body as a region of an open file (the ASGI zero-copy extension)::

    {"type": "http.response.zerocopysend", "file": <binary file object>, "offset": int,
     "count": int, "more_body": bool}

The kernel copies the region from the page cache to the socket (``loop.sendfile``): the bytes
never enter the process. h11 still frames them, so the answer's ``Content-Length`` or chunking
stays exact: ``_FileRegion`` stands in for the bytes in h11's writer, which passes it through
(``send_with_data_passthrough``) between the framing it writes.

uvicorn offers no such extension; ``with_zero_copy`` adds it to its h11 protocol's app. The
region must stay in the file for the whole send (a storage node's segment files are only ever
unlinked, never truncated, so an open descriptor keeps them whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO

import h11
from uvicorn.protocols.http.h11_impl import RequestResponseCycle

ZERO_COPY_SEND = "http.response.zerocopysend"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Send], Awaitable[None]]


class _FileRegion:
    """``count`` bytes of a file, handed to h11 in place of body bytes: h11 measures it (the
    chunk size, or what is left of the Content-Length) and passes it through."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


def with_zero_copy(app: ASGIApp, loop: asyncio.AbstractEventLoop) -> ASGIApp:
    """``app`` with the zero-copy extension on every request uvicorn's h11 protocol runs."""

    async def zero_copy_app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                            send: Send) -> None:
        cycle = getattr(send, "__self__", None)
        if scope["type"] != "http" or not isinstance(cycle, RequestResponseCycle):
            await app(scope, receive, send)
            return
        scope["extensions"] = {**scope.get("extensions", {}), ZERO_COPY_SEND: {}}

        corked = False

        async def sending(message: Message) -> None:
            nonlocal corked
            if message["type"] == ZERO_COPY_SEND:
                corked = corked or _cork(cycle.transport, True)
                await _send_region(cycle, loop, message)
            else:
                await send(message)
            if corked and message["type"] != "http.response.start" and not message.get("more_body", False):
                corked = _cork(cycle.transport, False)

        await app(scope, receive, sending)

    return zero_copy_app


async def _send_region(cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop, message: Message) -> None:
    """Send ``message``'s file region as the next part of ``cycle``'s body."""
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"{ZERO_COPY_SEND} outside a response body")
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    count = int(message["count"])
    if count and not cycle.disconnected and cycle.scope["method"] != "HEAD":  # a HEAD answer has no body
        file: BinaryIO = message["file"]
        pieces = cycle.conn.send_with_data_passthrough(h11.Data(data=_FileRegion(count)))  # type: ignore[arg-type]
        for piece in pieces or ():
            if cycle.transport.is_closing():
                cycle.disconnected = True
                return
            if not isinstance(piece, _FileRegion):
                cycle.transport.write(piece)
                continue
            try:
                await _sendfile(cycle.transport, loop, file, int(message["offset"]), count)
            except OSError:  # the client went away mid-send: as uvicorn marks a lost connection
                cycle.disconnected = True
                cycle.transport.close()
                return
    if not message.get("more_body", False):
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": False})


async def _sendfile(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, file: BinaryIO, offset: int,
                    count: int) -> None:
    """``loop.sendfile``, after one direct ``os.sendfile`` when nothing waits in the transport's
    buffer: a region that fits the socket's buffer then costs one system call, without the
    loop's pausing and waiting around it."""
    sent = 0
    if transport.get_write_buffer_size() == 0:
        with contextlib.suppress(BlockingIOError):
            sent = os.sendfile(transport.get_extra_info("socket").fileno(), file.fileno(), offset, count)
    if sent < count:
        await loop.sendfile(transport, file, offset + sent, count - sent)


def _cork(transport: asyncio.Transport, on: bool) -> bool:
    """Hold (``on``) or flush the socket's partial packets (``TCP_CORK``), so a frame's small
    header leaves in one packet with the file bytes after it; returns ``on``."""
    if hasattr(socket, "TCP_CORK") and not transport.is_closing():
        with contextlib.suppress(OSError):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    return on
