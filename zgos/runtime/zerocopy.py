"""Zero-copy response bodies on the hardened uvicorn/h11 server (``zgos.runtime.serve``).

An app that finds ``http.response.zerocopysend`` in ``scope["extensions"]`` may send part of its
body as a region of an open file (the ASGI zero-copy extension)::

    {"type": "http.response.zerocopysend", "file": <binary file object>, "offset": int,
     "count": int, "more_body": bool, "head": bytes}

``head`` (optional, zgos's addition) is sent before the region, as a body message would send it:
a stream of small headers each followed by a region then takes one message per region, not two
(each message passes every middleware).

The kernel copies the region from the page cache to the socket (``loop.sendfile``): the bytes
never enter the process. h11 still frames them, so the answer's ``Content-Length`` or chunking
stays exact: ``_FileRegion`` stands in for the bytes in h11's writer, which passes it through
(``send_with_data_passthrough``) between the framing it writes.

uvicorn offers no such extension; ``with_zero_copy`` adds it to its h11 protocol's app. The
region must stay in the file for the whole send (a storage node's segment files are only ever
unlinked, never truncated, so an open descriptor keeps them whole).

A body made in worker threads (the gateway's proven segments) may skip the event loop too::

    {"type": "zgos.response.threadsend", "count": int, "chunks": <iterator of bytes>,
     "limiter": <anyio CapacityLimiter>, "stall_s": float, "deadline_s": float}

One worker thread takes the chunks as they come and writes them straight to the socket (the
GIL released while it waits), so they are neither joined nor queued in the event loop. h11
frames the ``count`` bytes as for a file region, and the message ends the body. If the chunks
end early (raise), the client reads nothing for ``stall_s`` or the whole takes longer than
``deadline_s``, the connection is closed short of the body: the client sees a broken transfer,
never bytes the app did not give.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, BinaryIO

import anyio.to_thread
import h11
from uvicorn.protocols.http.h11_impl import RequestResponseCycle

ZERO_COPY_SEND = "http.response.zerocopysend"
THREAD_SEND = "zgos.response.threadsend"
FLUSH_POLL_S = 0.001  # first wait for the loop to send what came before a thread's body
MAX_FLUSH_POLL_S = 0.05

log = logging.getLogger(__name__)

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
        scope["extensions"] = {**scope.get("extensions", {}), ZERO_COPY_SEND: {}, THREAD_SEND: {}}

        corked = False

        async def sending(message: Message) -> None:
            nonlocal corked
            if message["type"] == ZERO_COPY_SEND:
                corked = corked or _cork(cycle.transport, True)
                await _send_region(cycle, loop, message)
            elif message["type"] == THREAD_SEND:
                await _send_from_thread(cycle, message)
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
    count, head = int(message["count"]), bytes(message.get("head", b""))
    if head and not cycle.disconnected and cycle.scope["method"] != "HEAD":
        for piece in cycle.conn.send_with_data_passthrough(h11.Data(data=head)) or ():
            cycle.transport.write(piece)
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
            except OSError:  # the client went away mid-send
                _drop(cycle)
                return
    if not message.get("more_body", False):
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_from_thread(cycle: RequestResponseCycle, message: Message) -> None:
    """Send ``message``'s chunks from a worker thread as the rest of ``cycle``'s body, and end it."""
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"{THREAD_SEND} outside a response body")
    count = int(message["count"])
    if count and not cycle.disconnected and cycle.scope["method"] != "HEAD":
        pieces = cycle.conn.send_with_data_passthrough(h11.Data(data=_FileRegion(count)))  # type: ignore[arg-type]
        for piece in pieces or ():
            if not isinstance(piece, _FileRegion):
                cycle.transport.write(piece)
                continue
            if not await _flushed(cycle.transport, float(message["stall_s"])):  # what the loop holds goes first
                _drop(cycle)
                return
            deadline = time.monotonic() + float(message["deadline_s"])
            sent = await anyio.to_thread.run_sync(
                _write_chunks, cycle.transport.get_extra_info("socket").fileno(), message["chunks"],
                float(message["stall_s"]), deadline, limiter=message["limiter"])
            if sent < count:
                log.warning("an answer stopped %d bytes short of its body", count - sent)
                _drop(cycle)
                return
    await cycle.send({"type": "http.response.body", "body": b"", "more_body": False})


def _drop(cycle: RequestResponseCycle) -> None:
    """Close ``cycle``'s connection short of its body, marked lost as uvicorn marks one."""
    cycle.disconnected = True
    cycle.transport.close()


async def _flushed(transport: asyncio.Transport, stall_s: float) -> bool:
    """Whether everything ``transport`` still holds was sent within ``stall_s`` (polled, backing
    off: usually it is at once, the loop already waited for the buffer to drain below its mark)."""
    give_up, pause = time.monotonic() + stall_s, FLUSH_POLL_S
    while transport.get_write_buffer_size():
        if transport.is_closing() or time.monotonic() > give_up:
            return False
        await asyncio.sleep(pause)
        pause = min(2 * pause, MAX_FLUSH_POLL_S)
    return not transport.is_closing()


def _write_chunks(fd: int, chunks: Iterator[bytes], stall_s: float, deadline: float) -> int:
    """Write ``chunks`` to the non-blocking socket ``fd`` as they come; the bytes written, up to
    the first failure: the chunks raised, the client left, it read nothing for ``stall_s``, or
    ``deadline`` (monotonic) passed."""
    written = 0
    writable = select.poll()
    writable.register(fd, select.POLLOUT)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    done = os.write(fd, view)
                except BlockingIOError:
                    wait_s = min(stall_s, deadline - time.monotonic())
                    if wait_s <= 0 or not writable.poll(wait_s * 1000):
                        return written
                    continue
                view, written = view[done:], written + done
    except Exception as exc:  # whatever ended the chunks or the connection, the body ends here (logged)
        log.warning("an answer's body stopped: %s", exc)
    return written


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
