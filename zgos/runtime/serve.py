"""Serve until signalled: every service process runs until SIGINT or SIGTERM
(``zgos.runtime.signals``), then shuts down cleanly and returns, so its own
clean-up runs. An HTTP service serves its ASGI app behind ``GuardedEdge`` on a hardened
uvicorn/h11 server, on a socket bound before it starts (the server-side limits of ``edge.py``'s
table: request head deadline, header size, keep-alive, connections).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from zgos.core.errors import ConfigError, ZgError
from zgos.runtime.edge import (
    ASGIApp,
    EdgePolicy,
    GuardedEdge,
    restore_process_state,
    validate_process_state,
)
from zgos.runtime.signals import stop_on_signal
from zgos.runtime.zerocopy import with_zero_copy

KEEP_ALIVE_TIMEOUT_S = 5
HEAD_TIMEOUT_S = 10.0  # request line and headers, from the connection or the previous answer
MAX_HEADER_BYTES = 16 * 1024


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request's head: the request line and
    headers must arrive within ``HEAD_TIMEOUT_S`` of the connection (or of the previous
    answer), else the connection is closed. uvicorn alone waits forever for a head sent one
    byte at a time (slowloris); the edge's own deadline only starts once the head is in.
    Apps may send file regions without copying them (``zgos.runtime.zerocopy``)."""

    _head_deadline: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = with_zero_copy(self.app, self.loop)

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


# --- listening -------------------------------------------------------------------------------


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port) for ``hardened_server``.

    Binding before the server starts lets a service report a taken port as a ``ConfigError``
    naming it (raised here) and learn its port before it builds its ``LocalAccess``.

    The socket is made with ``IPPROTO_TCP`` named: asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on connections of such a listener. With Nagle on, an answer written
    as headers then body waits for the client's delayed ACK: 40 ms per request on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port") from None
    return sock


def serve_in_foreground(server: uvicorn.Server, sock: socket.socket | None = None) -> None:
    """Run ``server`` (on ``sock``, else on the host and port of its config) in the calling
    thread until SIGINT or SIGTERM (``stop_on_signal``), then return after a graceful shutdown,
    so the caller's own cleanup runs. (uvicorn handles the signals itself while it runs and
    raises the one it got again once it has stopped: the handler here takes it.)"""

    def stop() -> None:
        server.should_exit = True

    try:
        with stop_on_signal(stop):
            server.run(sockets=[sock] if sock is not None else None)
    finally:
        if sock is not None:
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
