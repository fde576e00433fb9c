"""Small network helpers shared by launchers, clients and the devnet: port checks, readiness
waits and one JSON-RPC call.

httpx (~0.3 s to import) is imported by the calls that use it, not with this module: the
devnet's service table uses the port checks, and ``zg devnet status`` starts at once."""

from __future__ import annotations

import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zgos.core.errors import ConfigError

if TYPE_CHECKING:
    import httpx


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


# Below Linux's ephemeral range (32768+, the local ports of outgoing connections) and the test
# devnets' block (20000-32300): between free_port() and the caller's bind, no outgoing
# connection can take the port, as it could one the kernel picked with bind(0).
FREE_PORT_RANGE = (10_000, 20_000)
# "LOW-HIGH": the part of FREE_PORT_RANGE this process and its children draw from. Two processes
# that never draw the same port cannot take one between the other's draw and bind (the test
# suite gives each xdist worker its own part).
FREE_PORT_RANGE_ENV = "ZGOS_FREE_PORT_RANGE"
FREE_PORT_TRIES = 64
# Ports this process handed out lately and is not to hand out again: a caller that asks for
# several before binding any (a cluster of nodes) must not get one twice.
_HANDED_OUT: deque[int] = deque(maxlen=1024)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, drawn at random from ``free_port_range()`` and not one
    this process handed out lately (tests use it to avoid the devnet's fixed ports; services to
    start a child on)."""
    draw, ports = random.SystemRandom(), free_port_range()
    for _ in range(FREE_PORT_TRIES):
        port = draw.randrange(*ports)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.append(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: the kernel's pick
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_range() -> tuple[int, int]:
    """Where ``free_port`` draws: ``$ZGOS_FREE_PORT_RANGE`` (``LOW-HIGH``, inside
    ``FREE_PORT_RANGE``), else all of ``FREE_PORT_RANGE``."""
    value = os.environ.get(FREE_PORT_RANGE_ENV)
    if not value:
        return FREE_PORT_RANGE
    try:
        low, high = (int(part) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"{FREE_PORT_RANGE_ENV}={value!r}: expected LOW-HIGH, e.g. 10000-15000") from None
    if not FREE_PORT_RANGE[0] <= low < high <= FREE_PORT_RANGE[1]:
        raise ValueError(f"{FREE_PORT_RANGE_ENV}={value!r}: must lie within {FREE_PORT_RANGE[0]}-{FREE_PORT_RANGE[1]}")
    return low, high


def worker_port_range(index: int, count: int) -> str:
    """The ``$ZGOS_FREE_PORT_RANGE`` of worker ``index`` of ``count``: its equal part of
    ``FREE_PORT_RANGE``."""
    width = (FREE_PORT_RANGE[1] - FREE_PORT_RANGE[0]) // count
    low = FREE_PORT_RANGE[0] + index * width
    return f"{low}-{low + width}"


READY_TIMEOUT_ENV = "ZGOS_READY_TIMEOUT_S"
# One deadline for every wait on a service's own health signal (devnet services, test servers):
# generous, because how long a start-up takes depends on the machine and its load, not on the
# service; a service that dies fails the wait at once instead.
DEFAULT_READY_TIMEOUT_S = 300.0


def ready_timeout_s() -> float:
    """How long a service may take to become healthy: ``$ZGOS_READY_TIMEOUT_S`` or 300 s."""
    value = os.environ.get(READY_TIMEOUT_ENV)
    if not value:
        return DEFAULT_READY_TIMEOUT_S
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ConfigError(f"{READY_TIMEOUT_ENV}={value!r} is not a positive number of seconds")
    return timeout


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``check`` until it returns True or ``timeout_s`` passes; return the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def wait_ready(ready: Callable[[], bool], alive: Callable[[], bool] = lambda: True,
               interval_s: float = 0.1) -> bool:
    """Poll a service's own health signal ``ready`` until it holds (True). Give up (False) at
    once when ``alive`` says the service is gone, else after the one readiness deadline
    (``ready_timeout_s``)."""
    wait_until(lambda: not alive() or ready(), ready_timeout_s(), interval_s)
    return alive() and wait_until(ready, 0)


class JsonRpcFailure(Exception):
    """A JSON-RPC call gave no result; ``str(exc)`` says why in a few words. Callers branch on
    the subclass (and on ``JsonRpcCallError.code``), never on the text."""


class JsonRpcUnreachable(JsonRpcFailure):
    """No answer: connection refused, timeout, broken transfer (``str``: the httpx error's name).
    The transport failed; the server may never have seen the call."""


class JsonRpcGuarded(JsonRpcUnreachable):
    """The outbound guard cut the call: deadline, size cap, redirects or a refused address
    (``str``: which). The server misbehaved, or was never contacted."""


class JsonRpcNotJson(JsonRpcFailure):
    """An answer that is not a JSON-RPC response object."""


class JsonRpcCallError(JsonRpcFailure):
    """The server answered with a JSON-RPC error object: its ``code`` (None if it gave no
    integer code), ``message`` and ``data``; ``str``: the message."""

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_answer(cls, error: Any) -> JsonRpcCallError:
        """The error of an answer's ``error`` member, whatever shape a stranger gave it."""
        if not isinstance(error, dict):
            return cls(None, str(error))
        code = error.get("code")
        typed_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        return cls(typed_code, str(error.get("message")), error.get("data"))


# The name this error had before it carried its code (callers on other branches still use it).
JsonRpcErrorAnswer = JsonRpcCallError


def jsonrpc_request(method: str, params: Sequence[Any] = (), request_id: int = 1) -> dict[str, Any]:
    """The request object of one JSON-RPC 2.0 call."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def call_jsonrpc(http: httpx.Client, url: str, method: str, params: Sequence[Any] = (), *,
                 request_id: int = 1, timeout_s: float | None = None) -> Any:
    """``method(*params)`` at ``url``: its result (None when the answer has none).

    Raises ``JsonRpcUnreachable`` (the transport failed; ``JsonRpcGuarded`` if the outbound
    guard cut it), ``JsonRpcNotJson`` or ``JsonRpcCallError`` (the server's error object).
    For a URL someone announced, pass a ``zgos.runtime.outbound.OutboundClient``: on it
    ``timeout_s`` is the call's total time and the answer's size is capped."""
    import httpx

    from zgos.runtime.outbound import DeadlineExceeded, OutboundRefused

    extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
    try:
        answer = http.post(url, json=jsonrpc_request(method, params, request_id), **extra).json()
    except (OutboundRefused, DeadlineExceeded, httpx.TooManyRedirects) as exc:
        raise JsonRpcGuarded(str(exc)) from None
    except httpx.HTTPError as exc:
        raise JsonRpcUnreachable(type(exc).__name__) from None
    except ValueError:
        raise JsonRpcNotJson("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise JsonRpcNotJson(f"{method} answered {str(answer)[:80]}")
    if "error" in answer:
        raise JsonRpcCallError.from_answer(answer["error"])
    return answer.get("result")


def rpc_ready(url: str, method: str = "eth_chainId") -> bool:
    """True if ``url`` answers a JSON-RPC ``method`` with a result (by default ``eth_chainId``:
    an EVM node is up)."""
    import httpx

    response = httpx.post(url, json=jsonrpc_request(method), timeout=1)
    return response.status_code == 200 and "result" in response.json()


def http_ok(url: str) -> bool:
    """True if ``url`` answers a GET without a server error."""
    import httpx

    return httpx.get(url, timeout=1).status_code < 500
