"""The guarded edge: what every zgos service checks before a request reaches a handler.

zgos services take requests from strangers (ARCHITECTURE.md, "Among strangers"). Each one
serves its HTTP app (FastAPI/Starlette, ASGI) behind ``GuardedEdge`` on a uvicorn server built
by ``hardened_server`` (``serve.py``), so that every request, whatever the service, is held to
one table of limits (README, "Limits at the edge"):

* **Body size**: a route's ``max_body_bytes``; a larger ``Content-Length`` is refused (413)
  before a byte is read, a body that grows past it while streaming is cut off (413). The edge
  reads the body before the app sees it, except on a ``Route.stream_body`` route: there a
  ``Content-Length`` is required (411 otherwise), so the server's HTTP parser holds the body to
  the length checked, and the app reads it as it arrives (a run of segments is checked and
  stored while the rest of it is on the wire).
* **Content type**: a request with a body must carry one of the route's ``content_types``
  (415). Browsers send cross-origin ``text/plain`` POSTs without asking first (no CORS
  preflight): refusing every type but ``application/json`` takes that path away.
* **Deadline**: the whole request, body read included, must finish within the route's
  ``deadline_s``; a slow client or a stuck handler gets 504 (or a cut connection once the
  response has started). Before that, the request head must arrive within ``HEAD_TIMEOUT_S``
  (``serve.HeadDeadlineH11Protocol``), or the connection is closed.
* **In flight**: at most ``max_inflight`` requests run at once; more get 503 at once, never a
  queue that grows.
* **Local access** (``Route.local``): spending and admin routes answer only a request whose
  ``Host`` is the address the service is bound to (DNS rebinding), whose ``Origin``, if any,
  is allow-listed (other web pages), and which carries the per-install token (any local
  process or page that guessed the port). See ``access.LocalAccess``.
* **JSON**: ``parse_json`` refuses nesting deeper than ``MAX_JSON_DEPTH`` before parsing, so
  the C decoder can never exhaust the C stack (shared/reference/libraries.md: py_ecc raises
  the recursion limit to 100,000 at import, after which 100,000 ``[`` segfault CPython's
  decoder). ``restore_process_state`` puts the interpreter's limit back at service start, and
  the edge puts it back (and says so) if a late import changes it again.
* **Errors**: anything a handler raises that is not an HTTP response becomes a 500 with a
  one-line message and no traceback in the answer (the traceback goes to the log: it is a bug).
* **Rate**: ``ratelimit.ClientRateLimiter`` keeps a token bucket per client address for the
  expensive public calls a service names (the service decides what a call costs).

A benchmark can pass ``enabled=False`` to measure what the guards cost; services never do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess, Refusal

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PYTHON_RECURSION_LIMIT = 1000  # CPython's default; its C stack holds this depth with room to spare
MAX_JSON_DEPTH = 64  # JSON-RPC and OpenAI bodies nest < 10 deep
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_INFLIGHT = 64
JSON_TYPES = frozenset({"application/json"})
_JSON_STRUCTURE = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


# --- process-wide state ----------------------------------------------------------------------


class ProcessStateChanged(ZgError):
    """A dependency changed interpreter-wide state a service relies on."""


def restore_process_state() -> None:
    """Put back what imports are known to change: the recursion limit (py_ecc sets 100,000)."""
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)


def validate_process_state() -> None:
    """Raise ``ProcessStateChanged`` if the recursion limit is not CPython's default."""
    limit = sys.getrecursionlimit()
    if limit != PYTHON_RECURSION_LIMIT:
        raise ProcessStateChanged(f"the recursion limit is {limit}, not {PYTHON_RECURSION_LIMIT}",
                                  "call zgos.runtime.edge.restore_process_state() after imports")


def _keep_process_state() -> None:
    if sys.getrecursionlimit() != PYTHON_RECURSION_LIMIT:
        log.error("a late import set the recursion limit to %d; restored to %d",
                  sys.getrecursionlimit(), PYTHON_RECURSION_LIMIT)
        restore_process_state()


# --- JSON ------------------------------------------------------------------------------------


class InvalidJson(ValueError):
    """A body that is not JSON, or nests deeper than allowed (``str``: why, in a few words)."""


def compute_json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body``, ignoring brackets inside strings.

    Only the brackets, quotes and escapes are visited (a regex scan in C), so a body of long
    strings with few brackets costs little; ``parse_json`` skips even that when the bracket
    count alone shows the body is shallow enough.
    """
    if b"[" not in body and b"{" not in body:
        return 0
    depth = deepest = 0
    in_string = False
    for match in _JSON_STRUCTURE.finditer(body):
        token = match[0]
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def validate_json_depth(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``InvalidJson`` if ``body`` nests deeper than ``max_depth``: for a parser that is
    not ``parse_json`` (one that also checks the shape, like ``billing.parse_chat_request``)."""
    if body.count(b"[") + body.count(b"{") > max_depth and compute_json_depth(body) > max_depth:
        raise InvalidJson(f"JSON nested deeper than {max_depth} levels")


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode ``body``; raise ``InvalidJson`` if it nests deeper than ``max_depth`` or is not JSON."""
    if body.count(b"[") + body.count(b"{") > max_depth and compute_json_depth(body) > max_depth:
        raise InvalidJson(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidJson(f"JSON nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"not valid JSON ({type(exc).__name__})") from None


# --- routes and the middleware ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Limits for requests whose path starts with ``prefix`` (the longest prefix wins)."""

    prefix: str = "/"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    content_types: frozenset[str] = JSON_TYPES
    deadline_s: float = DEFAULT_DEADLINE_S
    local: bool = False
    stream_body: bool = False  # the app reads the body as it arrives; Content-Length required


def openai_error_body(status: int, kind: str, message: str) -> bytes:
    """``{"error": {"message", "type", "code"}}``: the OpenAI shape the compute services use."""
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


def plain_error_body(status: int, kind: str, message: str) -> bytes:
    """``{"error": message}``: the storage node's and gateway's shape."""
    return json.dumps({"error": message}).encode()


@dataclass(frozen=True)
class EdgePolicy:
    routes: tuple[Route, ...] = (Route(),)
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    access: LocalAccess | None = None
    error_body: Callable[[int, str, str], bytes] = openai_error_body
    enabled: bool = True

    def route(self, path: str) -> Route:
        matching = [r for r in self.routes if path.startswith(r.prefix)]
        if not matching:
            return Route()
        return max(matching, key=lambda r: len(r.prefix))


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


@dataclass
class _Exchange:
    """One request's progress, for deciding what to answer when something goes wrong."""

    started: bool = False
    body: list[bytes] = field(default_factory=list)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


class GuardedEdge:
    """ASGI middleware enforcing an ``EdgePolicy`` in front of ``app``."""

    def __init__(self, app: ASGIApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.policy.enabled:
            await self.app(scope, receive, send)
            return
        _keep_process_state()
        route = self.policy.route(scope["path"])
        headers = _headers(scope)
        refusal = self._precheck(scope, route, headers)
        if refusal is not None:
            await self._refuse(send, refusal, close=True)
            return
        if self.inflight >= self.policy.max_inflight:
            await self._refuse(send, Refusal(503, "overloaded", "too many requests in flight; retry shortly"))
            return
        self.inflight += 1
        exchange = _Exchange()
        try:
            async with asyncio.timeout(route.deadline_s):
                if not route.stream_body:
                    receive = _replay(await self._read_body(receive, route, headers), receive)
                await self.app(scope, receive, self._tracking(send, exchange))
        except _Refused as refused:
            if not exchange.started:
                await self._refuse(send, refused.refusal, close=True)
        except TimeoutError:
            if not exchange.started:
                await self._refuse(send, Refusal(504, "deadline", f"request took longer than {route.deadline_s:g}s"),
                                   close=True)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope["path"])
            if not exchange.started:
                await self._refuse(send, Refusal(500, "internal", f"internal error on {scope['path']}"))
        finally:
            self.inflight -= 1

    def _precheck(self, scope: Scope, route: Route, headers: Mapping[str, str]) -> Refusal | None:
        if route.local:
            if self.policy.access is None:
                return Refusal(403, "forbidden", "this route is disabled: no install token configured")
            refusal = self.policy.access.check(headers)
            if refusal is not None:
                return refusal
        length = headers.get("content-length")
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if length is not None and (not length.isdigit() or int(length) > route.max_body_bytes):
            return Refusal(413, "too-large", f"body larger than {route.max_body_bytes} bytes")
        if route.stream_body and has_body and length is None:
            return Refusal(411, "length-required", "send the body with a Content-Length: this route reads it as it arrives")
        if has_body and _content_type(headers) not in route.content_types:
            allowed = ", ".join(sorted(route.content_types))
            return Refusal(415, "unsupported-media-type",
                           f"Content-Type {_content_type(headers) or 'none'!r} is not accepted here; send {allowed}")
        return None

    async def _read_body(self, receive: Receive, route: Route, headers: Mapping[str, str]) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > route.max_body_bytes:
                raise _Refused(Refusal(413, "too-large", f"body larger than {route.max_body_bytes} bytes"))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _tracking(self, send: Send, exchange: _Exchange) -> Send:
        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.started = True
            await send(message)

        return tracked

    async def _refuse(self, send: Send, refusal: Refusal, *, close: bool = False) -> None:
        body = self.policy.error_body(refusal.status, refusal.kind, refusal.message)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:  # the rest of an unread body must never be parsed as the next request
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits for a disconnect."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
