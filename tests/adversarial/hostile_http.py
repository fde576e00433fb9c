"""Real HTTP servers on 127.0.0.1 that misbehave on purpose: tarpits, endless bodies, redirect
loops, and a JSON-RPC peer that answers some methods honestly and the rest with a behaviour.

Each server is a plain socket server (one thread per connection), so a test controls every byte
and can read afterwards how many bytes it managed to push into the client.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

MAX_HEADER_BYTES = 64 * 1024
SEND_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()

    def rpc_method(self) -> str | None:
        try:
            value = json.loads(self.body).get("method")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


class Connection:
    """The server side of one request: ``send`` counts bytes and tells when the client left."""

    def __init__(self, sock: socket.socket, server: HostileServer, index: int) -> None:
        self.sock = sock
        self.server = server
        self.index = index  # which answer this is, in arrival order

    def send(self, data: bytes) -> bool:
        """False once the client closed the connection (or the server is stopping)."""
        if self.server.stopping.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.server.count(self.index, len(data))
        return True


Behaviour = Callable[[Request, Connection], None]


class HostileServer:
    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1") -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server((host, 0))
        self.host = host
        self.port = int(self.listener.getsockname()[1])
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.sent_per_answer: list[int] = []  # bytes pushed into each answer, in request order
        self._sent = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._sent

    def count(self, index: int, n: int) -> None:
        with self._lock:
            self._sent += n
            self.sent_per_answer[index] += n

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> HostileServer:
        return self.__enter__()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            while not self.stopping.is_set():
                request = _read_request(sock)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    self.sent_per_answer.append(0)
                    index = len(self.requests) - 1
                self.behaviour(request, Connection(sock, self, index))
                if request.headers.get("connection", "").lower() == "close":
                    return


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk or len(data) > MAX_HEADER_BYTES:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*lines[0].split(" "), "", ""][:3]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Request(method, path, headers, body, time.monotonic())


# --- behaviours ----------------------------------------------------------------------------


def tarpit(interval_s: float = 2.0, claimed_length: int = 4096) -> Behaviour:
    """Headers at once, then one body byte every ``interval_s`` for as long as the client waits."""

    def respond(request: Request, conn: Connection) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {claimed_length}\r\n\r\n"
        if not conn.send(head.encode()):
            return
        while conn.send(b" "):
            time.sleep(interval_s)

    return respond


def endless_body(content_length: int | None = None) -> Behaviour:
    """A fast body that never ends (or claims ``content_length`` and sends more than that)."""

    def respond(request: Request, conn: Connection) -> None:
        length = f"Content-Length: {content_length}\r\n" if content_length is not None else "Connection: close\r\n"
        if not conn.send(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n".encode()):
            return
        chunk = b"[" * SEND_CHUNK_BYTES
        while conn.send(chunk):
            pass

    return respond


def redirect_loop(request: Request, conn: Connection) -> None:
    """Every request is answered with a 307 to the same path."""
    conn.send(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {request.path}\r\nContent-Length: 0\r\n\r\n".encode())


def redirect_to(location: str) -> Behaviour:
    def respond(request: Request, conn: Connection) -> None:
        conn.send(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())

    return respond


def json_answer(value: Any, extra_headers: str = "") -> Behaviour:
    def respond(request: Request, conn: Connection) -> None:
        body = json.dumps(value).encode()
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                  f"{extra_headers}\r\n".encode() + body)

    return respond


def jsonrpc_peer(results: dict[str, Any], otherwise: Behaviour) -> Behaviour:
    """Answer the JSON-RPC methods in ``results`` honestly; anything else gets ``otherwise``."""

    def respond(request: Request, conn: Connection) -> None:
        method = request.rpc_method()
        if method in results:
            json_answer({"jsonrpc": "2.0", "id": 1, "result": results[method]})(request, conn)
        else:
            otherwise(request, conn)

    return respond


HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "content-encoding"}


def relay(target: str) -> Behaviour:
    """An honest reverse proxy to ``target``: the server's ``requests`` then time-stamp every
    request a client made to the node behind it."""
    upstream = httpx.Client(timeout=60)

    def respond(request: Request, conn: Connection) -> None:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        answer = upstream.request(request.method, target + request.path, content=request.body, headers=headers)
        head = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP)
        conn.send(f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n{head}"
                  f"Content-Length: {len(answer.content)}\r\n\r\n".encode() + answer.content)

    return respond
