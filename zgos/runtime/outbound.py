"""Calls to URLs that strangers announced (registry entries, peers): one guarded HTTP client.

A URL read from the chain is a claim by whoever wrote it. Calling it costs the caller at most a
stated bound, whatever the server at the other end does:

* **A total deadline per request.** Connecting, TLS, sending and every read, redirects included,
  share one deadline (httpx's own timeouts are per operation: a server sending one byte every
  second never trips them). ``within(seconds)`` bounds a sequence of calls the same way.
* **A response size cap**, checked against ``Content-Length`` and again while reading.
  Compressed bodies are refused (a small gzip body can inflate a thousandfold before any check).
* **At most ``max_redirects`` redirects**, each under the same deadline, cap and address check.
* **Only addresses the ``AddressPolicy`` allows** (``zgos.runtime.addresses``). The host is resolved and every address is
  classified (loopback, private, link-local, ...); the connection goes to an address that was
  checked, so no second lookup can be steered elsewhere (DNS rebinding). Loopback, private and
  link-local addresses are refused unless the policy allows them (the devnet allows loopback);
  unspecified, multicast and reserved addresses are always refused.
* **No proxies from the environment** (a proxy would connect on our behalf, past the check).

``OutboundClient`` is an httpx client with these guards in its transport, so plain httpx calls
and ``zgos.runtime.netutil.call_jsonrpc`` work on it unchanged; a ``timeout=`` argument is the
request's *total* time. (Async calls to providers go through ``zgos.compute.pool``, which
applies the same address policy.) A refusal is an
``httpx.TransportError`` subclass whose message says why (``DeadlineExceeded`` is an
``httpx.TimeoutException``).

The current deadline lives in a ``ContextVar`` (like ``decimal``'s context): it follows the
thread or asyncio task that set it, so concurrent probes never share one.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from zgos.runtime.addresses import Address, AddressPolicy
from zgos.runtime.logs import log_connection

DEFAULT_DEADLINE_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_MAX_REDIRECTS = 3
DEFAULT_MAX_CONNECTIONS = 64



class OutboundRefused(httpx.TransportError):
    """The guard refused a call or an answer (the message says which rule)."""


class AddressRefused(OutboundRefused):
    """The host resolves only to addresses the policy does not allow."""


class ResponseTooLarge(OutboundRefused):
    """The answer is larger than the client's response cap."""


class EncodedResponseRefused(OutboundRefused):
    """The answer is compressed (``Content-Encoding``), which the guard does not inflate."""


class DeadlineExceeded(httpx.TimeoutException):
    """The call (or the ``within`` block around it) ran out of time."""




# --- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic()
    budget_s: float

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"no complete answer within the {self.budget_s:g} s deadline")


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("zgos_outbound_deadline", default=None)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Bound every outbound call made inside this block (in this thread or task) by one
    deadline ``seconds`` from now, or by the enclosing block's deadline if that is sooner."""
    current = _deadline.get()
    chosen = _Deadline(time.monotonic() + seconds, seconds)
    if current is not None and current.at <= chosen.at:
        chosen = current
    token = _deadline.set(chosen)
    try:
        yield
    finally:
        _deadline.reset(token)


def _bounded(timeout: float | None) -> tuple[float | None, _Deadline | None]:
    """``timeout`` cut to the current deadline, and that deadline when it is the tighter bound
    (so a timeout can be reported as the deadline). Raises ``DeadlineExceeded`` once it passed."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout, None
    remaining = deadline.remaining()
    if remaining <= 0:
        raise deadline.exceeded()
    if timeout is None or remaining < timeout:
        return remaining, deadline
    return timeout, None


def _request_budget(request: httpx.Request, default_s: float) -> float:
    """The total time a request may take: the largest of its httpx timeouts (a per-call
    ``timeout=`` sets them all), else the client's deadline."""
    timeouts = request.extensions.get("timeout") or {}
    values = [float(v) for v in timeouts.values() if v is not None]
    return max(values) if values else default_s


# --- name resolution ---------------------------------------------------------------------


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def resolve(host: str, port: int, timeout_s: float | None) -> list[Address]:
    """The addresses ``host`` resolves to, within ``timeout_s`` (the resolver runs in a daemon
    thread: a stalled DNS server costs the caller the timeout, not a hang)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    answer: list[list[tuple[Any, ...]]] = []
    failure: list[OSError] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="outbound-resolve", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise DeadlineExceeded(f"resolving {host} took longer than {timeout_s:g} s")
    if failure or not answer:
        raise httpx.ConnectError(f"cannot resolve {host} ({failure[0] if failure else 'no answer'})")
    return _addresses(answer[0])


def _allowed(policy: AddressPolicy, host: str, addresses: list[Address]) -> list[Address]:
    allowed = [a for a in addresses if policy.refusal(a) is None]
    if not allowed:
        reasons = "; ".join(str(policy.refusal(a)) for a in addresses) or "no address"
        raise AddressRefused(f"refused to connect to {host}: {reasons}")
    return allowed


def pin_target(target: str, policy: AddressPolicy, timeout_s: float | None = DEFAULT_DEADLINE_S) -> str:
    """``host:port`` (a gRPC target) as ``address:port`` of an address ``policy`` allows, so the
    connection goes where the check looked (no second lookup). Raises ``AddressRefused`` for a
    refused host, ``httpx.ConnectError`` for a target without a port or a host that does not
    resolve."""
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise httpx.ConnectError(f"{target!r} is not host:port")
    address = _allowed(policy, host, resolve(host.strip("[]"), int(port), timeout_s))[0]
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


# --- sync transport ----------------------------------------------------------------------


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounded, deadline = _bounded(timeout)
        try:
            return self._inner.read(max_bytes, bounded)
        except httpcore.ReadTimeout:
            if deadline is not None:
                raise deadline.exceeded() from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        bounded, deadline = _bounded(timeout)
        try:
            self._inner.write(buffer, bounded)
        except httpcore.WriteTimeout:
            if deadline is not None:
                raise deadline.exceeded() from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        bounded, _ = _bounded(timeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend behind the address check and the deadline."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        bounded, _ = _bounded(timeout)
        addresses = _allowed(self.policy, host, resolve(host, port, bounded))
        failure: Exception | None = None
        for address in addresses:  # each one checked; connect to the checked address itself
            bounded, deadline = _bounded(timeout)
            try:
                stream = self._inner.connect_tcp(str(address), port, bounded, local_address, socket_options)
            except httpcore.ConnectTimeout as exc:
                failure = deadline.exceeded() if deadline is not None else exc
                continue
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            log_connection(f"{host}:{port}", str(address))
            return _DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise AddressRefused("unix sockets are never an outbound address")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _check_headers(response: httpx.Response, max_bytes: int) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise EncodedResponseRefused(f"compressed answer ({encoding}) refused")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ResponseTooLarge(f"answer of {int(length):,} bytes is larger than the {max_bytes:,}-byte cap")


def _too_large(max_bytes: int) -> ResponseTooLarge:
    return ResponseTooLarge(f"answer larger than the {max_bytes:,}-byte cap (cut)")


class _CappedStream(httpx.SyncByteStream):
    """A response body read under the request's deadline, cut once it exceeds the cap."""

    def __init__(self, inner: httpx.SyncByteStream, max_bytes: int, deadline: _Deadline | None) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        received = 0
        while True:
            token = _deadline.set(self._deadline)
            try:
                chunk = next(chunks, None)
            finally:
                _deadline.reset(token)
            if chunk is None:
                return
            received += len(chunk)
            if received > self._max_bytes:
                raise _too_large(self._max_bytes)
            yield chunk

    def close(self) -> None:
        self._inner.close()


def _pool_options(limits: httpx.Limits) -> dict[str, Any]:
    # No ssl_context: httpcore then builds its verifying default (certifi) per TLS connection,
    # so the many plain-HTTP clients never pay for loading the CA bundle.
    return {"max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry}


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over ``GuardedBackend``, with the size cap on every answer."""

    def __init__(self, policy: AddressPolicy, max_response_bytes: int, limits: httpx.Limits) -> None:
        # httpx takes no network backend: the pool it builds (cheaply: verify=False skips loading
        # the CA bundle) is replaced at once by one over ours, which verifies certificates.
        super().__init__(limits=limits, trust_env=False, verify=False)
        self._pool = httpcore.ConnectionPool(network_backend=GuardedBackend(policy), **_pool_options(limits))
        self.max_response_bytes = max_response_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        try:
            _check_headers(response, self.max_response_bytes)
        except OutboundRefused:
            response.close()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        stream = _CappedStream(response.stream, self.max_response_bytes, _deadline.get())
        return httpx.Response(response.status_code, headers=response.headers, stream=stream,
                              extensions=response.extensions)


class OutboundClient(httpx.Client):
    """An httpx client for announced URLs: total deadline, size cap, bounded redirects, address
    policy (see the module docstring). ``timeout=`` on a call is that call's total time."""

    def __init__(self, policy: AddressPolicy, *, deadline_s: float = DEFAULT_DEADLINE_S,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, max_redirects: int = DEFAULT_MAX_REDIRECTS,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        super().__init__(transport=GuardedTransport(policy, max_response_bytes, limits), timeout=deadline_s,
                         follow_redirects=True, max_redirects=max_redirects, trust_env=False,
                         headers={"Accept-Encoding": "identity"})
        self.policy = policy
        self.deadline_s = deadline_s
        self.max_response_bytes = max_response_bytes

    def send(self, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        with within(_request_budget(request, self.deadline_s)):
            return super().send(request, *args, **kwargs)
