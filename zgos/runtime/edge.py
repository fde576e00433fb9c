"""The guarded edge: what every zgos service checks before a request reaches a handler.

zgos services take requests from strangers (ARCHITECTURE.md, "Among strangers"). Each one
serves its HTTP app (FastAPI/Starlette, ASGI) behind ``GuardedEdge`` on a uvicorn server built
by ``hardened_server``, so that every request, whatever the service, is held to one table of
limits (README, "Limits at the edge"):

* **Body size**: a route's ``max_body_bytes``; a larger ``Content-Length`` is refused (413)
  before a byte is read, a body that grows past it while streaming is cut off (413).
* **Content type**: a request with a body must carry one of the route's ``content_types``
  (415). Browsers send cross-origin ``text/plain`` POSTs without asking first (no CORS
  preflight): refusing every type but ``application/json`` takes that path away.
* **Deadline**: the whole request, body read included, must finish within the route's
  ``deadline_s``; a slow client or a stuck handler gets 504 (or a cut connection once the
  response has started). Before that, the request head must arrive within ``HEAD_TIMEOUT_S``
  (``HeadDeadlineH11Protocol``), or the connection is closed.
* **In flight**: at most ``max_inflight`` requests run at once; more get 503 at once, never a
  queue that grows.
* **Local access** (``Route.local``): spending and admin routes answer only a request whose
  ``Host`` is the address the service is bound to (DNS rebinding), whose ``Origin``, if any,
  is allow-listed (other web pages), and which carries the per-install token (any local
  process or page that guessed the port). See ``LocalAccess``.
* **JSON**: ``parse_json`` refuses nesting deeper than ``MAX_JSON_DEPTH`` before parsing, so
  the C decoder can never exhaust the C stack (shared/reference/libraries.md: py_ecc raises
  the recursion limit to 100,000 at import, after which 100,000 ``[`` segfault CPython's
  decoder). ``restore_process_state`` puts the interpreter's limit back at service start, and
  the edge puts it back (and says so) if a late import changes it again.
* **Errors**: anything a handler raises that is not an HTTP response becomes a 500 with a
  one-line message and no traceback in the answer (the traceback goes to the log: it is a bug).
* **Rate**: ``ClientRateLimiter`` keeps a token bucket per client address for the expensive
  public calls a service names (the service decides what a call costs).

A benchmark can pass ``enabled=False`` to measure what the guards cost; services never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import signal
import socket
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from zgos.core.errors import ZgError

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
KEEP_ALIVE_TIMEOUT_S = 5
HEAD_TIMEOUT_S = 10.0  # request line and headers, from the connection or the previous answer
MAX_HEADER_BYTES = 16 * 1024
JSON_TYPES = frozenset({"application/json"})
TOKEN_BYTES = 32
TOKEN_FILE = "token"
TOKEN_HEADER = "x-zg-token"
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


# --- the per-install token -------------------------------------------------------------------


def load_or_create_token(path: Path) -> str:
    """The token in ``path``, created (owner read/write only) if absent.

    Like Jupyter's: any local process that can read the file may spend and administer; a
    web page or another user cannot. A token file others can read is refused. Services of one
    install may start at once: the token is written in full to a private temporary file and
    linked into place, so nobody ever reads a half-written token, and the first link wins.
    """
    if path.exists():
        return read_token(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(TOKEN_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return read_token(path)


def read_token(path: Path) -> str:
    """The token in ``path``; ``ZgError`` if it is missing, empty or readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ZgError(f"cannot read the install token {path}: {exc.strerror}",
                      "start the service once to create it") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ZgError(f"the install token {path} is readable by others", f"chmod 600 {path}")
    if not text:
        raise ZgError(f"the install token {path} is empty", "delete it and restart the service")
    return text


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request carries: ``Authorization: Bearer T`` (the ``openai`` client's
    ``api_key``) or ``X-Zg-Token: T``."""
    direct = headers.get(TOKEN_HEADER)
    if direct:
        return direct.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- local access ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    status: int
    kind: str
    message: str


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class LocalAccess:
    """Who may call a local spending or admin route: right ``Host``, allowed ``Origin``, token."""

    token: str
    hosts: frozenset[str]
    origins: frozenset[str] = frozenset()

    @classmethod
    def for_listener(cls, token: str, host: str, port: int, *, origins: Iterable[str] = ()) -> LocalAccess:
        """Accept the names of the bound address (all loopback names for a loopback or
        wildcard bind) and origins served from them, plus ``origins``."""
        names = set(LOOPBACK_NAMES) if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::") else set()
        names.add(f"[{host}]" if ":" in host else host)
        hosts = frozenset(f"{name}:{port}" for name in names)
        own = {f"http://{h}" for h in hosts}
        return cls(token, hosts, frozenset(own | set(origins)))

    def check(self, headers: Mapping[str, str]) -> Refusal | None:
        """None if the request may proceed, else why not (403 for place, 401 for token)."""
        if headers.get("host", "").lower() not in self.hosts:
            return Refusal(403, "forbidden-host", f"Host {headers.get('host', '')!r} is not this service's address")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return Refusal(403, "forbidden-origin", f"requests from origin {origin!r} are not allowed")
        token = presented_token(headers)
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return Refusal(401, "bad-token", "this call needs the install token "
                           "(`zg compute token`; send it as 'Authorization: Bearer TOKEN')")
        return None


# --- routes and the middleware ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Limits for requests whose path starts with ``prefix`` (the longest prefix wins)."""

    prefix: str = "/"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    content_types: frozenset[str] = JSON_TYPES
    deadline_s: float = DEFAULT_DEADLINE_S
    local: bool = False


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
                body = await self._read_body(receive, route, headers)
                await self.app(scope, _replay(body, receive), self._tracking(send, exchange))
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


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request's head: the request line and
    headers must arrive within ``HEAD_TIMEOUT_S`` of the connection (or of the previous
    answer), else the connection is closed. uvicorn alone waits forever for a head sent one
    byte at a time (slowloris); the edge's own deadline only starts once the head is in."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        self._arm_head_deadline()  # before a pipelined request can start its own cycle
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        waiting_after = self.cycle  # a new request replaces it as soon as its head is parsed

        def expire() -> None:
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()

        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_S, expire)


def hardened_server(app: ASGIApp, *, host: str, port: int, policy: EdgePolicy,
                    max_connections: int = 256) -> uvicorn.Server:
    """A uvicorn server for ``app`` behind ``GuardedEdge``: h11 framing (no desync after a
    malformed request), bounded connections, a request head due within ``HEAD_TIMEOUT_S``,
    idle keep-alive closed after ``KEEP_ALIVE_TIMEOUT_S``, headers capped at
    ``MAX_HEADER_BYTES``."""
    restore_process_state()
    validate_process_state()
    config = uvicorn.Config(
        GuardedEdge(app, policy), host=host, port=port, http=HeadDeadlineH11Protocol, lifespan="auto",
        log_level="warning", access_log=False, server_header=False,
        limit_concurrency=max_connections, timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


# --- per-client rate limits ------------------------------------------------------------------


MAX_RATE_CLIENTS = 10_000


@dataclass(frozen=True)
class RateLimit:
    """``per_s`` units of work per second per client, up to ``burst`` at once; ``per_s`` 0: none."""

    per_s: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.per_s > 0


@dataclass(frozen=True)
class RateRefusal:
    """Why a client must wait, and for how many seconds (``Retry-After``; 0: never, split it)."""

    message: str
    retry_after_s: int


class ClientRateLimiter:
    """Token buckets keyed by client address.

    Rule: a client's bucket holds at most ``burst`` tokens and refills at ``per_s`` tokens a
    second; a request costing ``c`` is admitted iff the bucket holds at least ``c``, which it
    then loses. Over any ``t`` seconds a client is admitted at most ``burst + per_s * t``.
    Memory is bounded: beyond ``max_clients`` buckets the least recently seen is forgotten (a
    forgotten client starts with a full bucket, as a new one does). Thread-safe.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_RATE_CLIENTS) -> None:
        self.limit = limit
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str, cost: float) -> float:
        """Admit ``cost`` units for ``client``: 0.0 if admitted, else the seconds until it
        would be (``math.inf`` for a cost above the burst, which is never admitted)."""
        if not self.limit.enabled or cost <= 0:
            return 0.0
        if cost > self.limit.burst:
            return math.inf
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(client, (self.limit.burst, now))
            tokens = min(self.limit.burst, tokens + (now - at) * self.limit.per_s)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.limit.per_s
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def check(self, client: str, cost: float, unit: str) -> RateRefusal | None:
        """``take``, as the refusal to send (None: admitted); ``unit`` names what is counted."""
        wait = self.take(client, cost)
        if wait <= 0:
            return None
        if math.isinf(wait):
            return RateRefusal(f"this request costs {cost:g} {unit}, more than the rate limit allows at once "
                               f"({self.limit.burst:g}); split it", 0)
        return RateRefusal(f"rate limit: {self.limit.per_s:g} {unit} per second per client; retry in {wait:.1f}s",
                           math.ceil(wait))


# --- listening -------------------------------------------------------------------------------


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port) for ``hardened_server``.

    Binding before the server starts lets a service report a taken port as a configuration
    error (``OSError`` here) and learn its port before it builds its ``LocalAccess``.

    The socket is made with ``IPPROTO_TCP`` named: asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on connections of such a listener. With Nagle on, an answer written
    as headers then body waits for the client's delayed ACK: 40 ms per request on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_in_foreground(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run ``server`` on ``sock`` in the main thread until SIGINT or SIGTERM, then return after
    a graceful shutdown, so the caller's own cleanup runs. (uvicorn re-raises the signal it
    handled once it has stopped; SIGTERM's is made a no-op here, SIGINT's ``KeyboardInterrupt``
    is swallowed.)"""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


class EdgeServer:
    """A service's ASGI app behind the guarded edge on a hardened server, on a bound socket:
    ``serve`` runs it in the main thread until a signal or ``stop_soon``, ``start``/``stop``
    in a background thread (tests, benches)."""

    def __init__(self, app: ASGIApp, sock: socket.socket, policy: EdgePolicy) -> None:
        self.sock = sock
        host, self.port = sock.getsockname()[:2]
        self.url = f"http://{host}:{self.port}"
        self.server = hardened_server(app, host=host, port=self.port, policy=policy)
        self._thread: ServerThread | None = None

    def serve(self) -> None:
        serve_in_foreground(self.server, self.sock)

    def start(self) -> None:
        self._thread = ServerThread(self.server, self.sock)
        self._thread.start()

    def stop_soon(self) -> None:
        self.server.should_exit = True

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        else:
            self.stop_soon()
            self.sock.close()


class ServerThread:
    """A hardened server on a bound socket, run in a daemon thread (tests, benches, and
    services embedded in another process). ``start`` returns once it accepts connections."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self._thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True,
                                        name=f"http-{sock.getsockname()[1]}")

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ZgError(f"the server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.sock.close()
