"""A streamed HTTP response that knows when its client leaves (ASGI), for paid streams.

Starlette's ``StreamingResponse`` cancels its body iterator when the client disconnects but
leaves the generator suspended: its ``finally`` runs whenever the generator is collected, and
never when the body had not started yet. A paid stream cannot wait for that: the upstream must
be closed right away (so the model stops generating) and what was forwarded must be billed or
receipted exactly once. ``RelayResponse`` makes both explicit:

- ``pump(write)`` produces the body, calling ``await write(chunk)`` for each piece; it runs
  until it returns, raises, or the client disconnects, whichever comes first (a disconnect
  cancels it at its next ``await``);
- ``finish(ended, write)`` then always runs, shielded from cancellation (even when the
  server cancels the response from outside), and may still write when the client is there.

``write`` after the client left does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Ended:
    """How a relayed stream ended: ``client_left`` (disconnected, or the response was
    cancelled from outside), and the exception ``pump`` raised, if any."""

    client_left: bool
    error: Exception | None


Pump = Callable[[Write], Awaitable[None]]
Finish = Callable[[Ended, Write], Awaitable[None]]


class RelayResponse(Response):
    def __init__(self, pump: Pump, finish: Finish, *, headers: Mapping[str, str] | None = None,
                 media_type: str = "text/event-stream") -> None:
        self.pump = pump
        self.finish = finish
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client_left = True  # until the pump and the watch below say otherwise
        error: Exception | None = None

        async def write(chunk: bytes) -> None:
            if not client_left:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            client_left = False
            async with anyio.create_task_group() as group:

                async def run_pump() -> None:
                    nonlocal error
                    try:
                        await self.pump(write)
                    except Exception as exc:  # handed to finish, which decides what it means
                        error = exc
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    nonlocal client_left
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    client_left = True
                    group.cancel_scope.cancel()

                group.start_soon(run_pump)
                group.start_soon(watch)
        except BaseException:
            client_left = True  # cancelled from outside or the first send failed: stop writing
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self.finish(Ended(client_left, error), write)
                if not client_left:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
