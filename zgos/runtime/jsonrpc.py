"""JSON-RPC 2.0 on a zgos service: the one server-side dispatch (storage node, indexer), and
the bits of HTTP glue their Starlette apps share (``json_error``, ``ENDPOINT_ERRORS``,
``rate_refusal``).

A service gives ``JsonRpcServer`` its method table and, if it has any, which methods are local
(admin: install token, right Host and Origin, loopback source unless ``LocalAccess.remote``) and
what each call costs against the per-client rate limit. ``jsonrpc_endpoint`` serves it on a Starlette route, every
call run in the service's bounded worker pool. The rules:

* The body is parsed by ``edge.parse_json`` (nesting capped before the C decoder sees it); a
  body that is not JSON is a parse error (-32700).
* A request is one call or a batch: a non-empty array of at most ``max_batch_calls`` calls
  (``MAX_BATCH_CALLS`` = 100 by default). A larger batch is refused whole (-32600) before any
  call runs: no zgos or 0G client batches more than a few calls, and the cap bounds the work
  one request can ask for.
* A call needs ``"jsonrpc": "2.0"`` and a string ``method``; an ``id``, if present, is a
  string, number or null (-32600 otherwise, for that call only). ``params`` is an array (an
  object's values are taken in order), else -32602.
* A call without ``id`` is a notification: it runs and gets no answer. A request of
  notifications only is answered with HTTP 204 and no body.
* A method raises ``RpcError(code, message)`` for a typed error; a ``ZgError`` becomes -32000
  with its message; anything else is -32603 naming the method, never the exception (its
  traceback goes to the log: it is a bug).
* Answers are encoded one by one. Once they pass ``max_response_bytes`` (``MAX_RESPONSE_BYTES``
  = 16 MiB by default), the call that crossed the cap and every later call of the batch get
  -32003 "response too large"; the later calls do not run.
* Refused at the HTTP level, before anything runs, with the edge's ``{"error": message}``:
  a request naming a local method from a non-loopback address when the service does not
  serve admin calls to other hosts (``--remote-admin``) (403), without the Host,
  Origin and install token ``LocalAccess`` requires (403/401), or with no token configured
  (403); a request whose cost exceeds the client's rate limit (429, with ``Retry-After``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.edge import InvalidJson, parse_json, plain_error_body
from zgos.runtime.ratelimit import ClientRateLimiter, RateRefusal

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
RESPONSE_TOO_LARGE = -32003  # geth's code for the same cap

MAX_BATCH_CALLS = 100
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_INT64 = (1 << 63) - 1  # SQLite's INTEGER: sequence numbers and indexes above it exist nowhere
JSON_MEDIA_TYPE = "application/json"

RequestId = str | int | float | None
Params = list[Any]
Method = Callable[[Params], Any]


class RpcError(Exception):
    """A JSON-RPC error a method raises on purpose: ``code`` and a one-line ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- parameters ------------------------------------------------------------------------------


def get_param(params: Params, index: int, name: str, required: bool = True) -> Any:
    """``params[index]``; ``RpcError(INVALID_PARAMS)`` naming it if missing and required."""
    if index < len(params):
        return params[index]
    if required:
        raise RpcError(INVALID_PARAMS, f"missing parameter {index} ({name})")
    return None


def validate_int(value: Any, name: str, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    """``value`` if it is an integer in ``[minimum, maximum]`` (not a bool), else
    ``RpcError(INVALID_PARAMS)``: an out-of-range number never reaches SQLite or arithmetic."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise RpcError(INVALID_PARAMS, f"{name} must be an integer in {minimum}..{maximum}")
    return value


Model = TypeVar("Model", bound=BaseModel)


def parse_params(model: type[Model], params: Params) -> Model:
    """Positional ``params`` as ``model`` (in field order; params past the last field are
    ignored), validated once; ``RpcError(INVALID_PARAMS)`` naming the first missing or bad one
    (``missing parameter 1 (txSeq)``)."""
    values: dict[str, Any] = {}
    for index, (name, field) in enumerate(model.model_fields.items()):
        alias = field.alias or name
        if index < len(params):
            values[alias] = params[index]
        elif field.is_required():
            raise RpcError(INVALID_PARAMS, f"missing parameter {index} ({alias})")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name, message = str(first["loc"][0]), str(first["msg"])
        raise RpcError(INVALID_PARAMS, message if message.startswith(name) else f"{name}: {message}") from None


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    params: Params
    id: RequestId
    notification: bool


@dataclass(frozen=True)
class BadCall:
    """An item of the request that is not a valid call: answered with ``error``, never run."""

    id: RequestId
    error: RpcError


@dataclass(frozen=True)
class RpcRequest:
    items: tuple[Call | BadCall, ...]
    batch: bool

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(item for item in self.items if isinstance(item, Call))


def parse_call(value: Any) -> Call | BadCall:
    """One call object of a request (see the module rules)."""
    if not isinstance(value, dict):
        return BadCall(None, RpcError(INVALID_REQUEST, "request must be an object"))
    request_id = value.get("id")
    if not isinstance(request_id, str | int | float | None) or isinstance(request_id, bool):
        return BadCall(None, RpcError(INVALID_REQUEST, "id must be a string, number or null"))
    method = value.get("method")
    if value.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return BadCall(request_id, RpcError(INVALID_REQUEST, 'request needs "jsonrpc": "2.0" and a string "method"'))
    params = value.get("params", [])
    if isinstance(params, dict):
        params = list(params.values())
    if not isinstance(params, list):
        return BadCall(request_id, RpcError(INVALID_PARAMS, "params must be an array"))
    return Call(method, params, request_id, "id" not in value)


def parse_request(body: bytes, max_batch_calls: int = MAX_BATCH_CALLS) -> RpcRequest:
    """The calls in ``body``; ``RpcError`` for a body that is wrong as a whole (not JSON, an
    empty batch, a batch of more than ``max_batch_calls``)."""
    try:
        value = parse_json(body)
    except InvalidJson as exc:
        raise RpcError(PARSE_ERROR, f"parse error: {exc}") from None
    if not isinstance(value, list):
        return RpcRequest((parse_call(value),), batch=False)
    if not value:
        raise RpcError(INVALID_REQUEST, "empty batch")
    if len(value) > max_batch_calls:
        raise RpcError(INVALID_REQUEST, f"batch of {len(value)} calls is larger than {max_batch_calls}")
    return RpcRequest(tuple(parse_call(item) for item in value), batch=True)


def encode_error(request_id: RequestId, code: int, message: str) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the peer address and the request headers (lower-case names)."""

    host: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _never_local(method: str) -> bool:
    return False


def _free(call: Call) -> float:
    return 0.0


class JsonRpcServer:
    """A method table served by the module's rules. ``methods`` stays mutable (a node adds
    its miner's methods once the miner exists)."""

    def __init__(self, methods: dict[str, Method], *, max_batch_calls: int = MAX_BATCH_CALLS,
                 max_response_bytes: int = MAX_RESPONSE_BYTES,
                 is_local: Callable[[str], bool] = _never_local, access: LocalAccess | None = None,
                 cost: Callable[[Call], float] = _free, rate: ClientRateLimiter | None = None) -> None:
        self.methods = methods
        self.max_batch_calls = max_batch_calls
        self.max_response_bytes = max_response_bytes
        self.is_local = is_local
        self.access = access
        self.cost = cost
        self.rate = rate

    def handle(self, body: bytes, caller: Caller) -> HttpAnswer:
        """The HTTP answer to a JSON-RPC request body from ``caller`` (runs the calls)."""
        try:
            request = parse_request(body, self.max_batch_calls)
        except RpcError as exc:
            return HttpAnswer(200, encode_error(None, exc.code, exc.message))
        refusal = self.admit(request, caller)
        if refusal is not None:
            return refusal
        answer = self.answer(request)
        return HttpAnswer(204, b"") if answer is None else HttpAnswer(200, answer)

    def admit(self, request: RpcRequest, caller: Caller) -> HttpAnswer | None:
        """None if the request may run, else the HTTP refusal (see the module rules)."""
        local = next((call.method for call in request.calls if self.is_local(call.method)), None)
        if local is not None:
            if not is_loopback(caller.host) and not (self.access is not None and self.access.remote):
                return _refusal(403, f"{local} is only served to localhost (start the service with "
                                     "--remote-admin to administer it from other hosts with the token)")
            if self.access is None:
                return _refusal(403, f"{local} is disabled: the service has no install token")
            refused = self.access.check(caller.headers)
            if refused is not None:
                return _refusal(refused.status, refused.message)
        if self.rate is not None:
            refused_rate = self.rate.check(caller.host, sum(self.cost(call) for call in request.calls), "expensive calls")
            if refused_rate is not None:
                return _refusal(429, refused_rate.message, rate_headers(refused_rate))
        return None

    def answer(self, request: RpcRequest) -> bytes | None:
        """The encoded answers of an admitted request; None when no call needs one."""
        parts: list[bytes] = []
        size = 0
        for item in request.items:
            if isinstance(item, BadCall):
                part: bytes | None = encode_error(item.id, item.error.code, item.error.message)
            elif size > self.max_response_bytes:
                part = None if item.notification else self._too_large(item)
            else:
                part = self._run(item)
            if part is not None:
                size += len(part)
                if size > self.max_response_bytes and isinstance(item, Call):
                    part = self._too_large(item)
                parts.append(part)
        if not parts:
            return None
        return b"[" + b",".join(parts) + b"]" if request.batch else parts[0]

    def _too_large(self, call: Call) -> bytes:
        return encode_error(call.id, RESPONSE_TOO_LARGE,
                            f"response too large: the answer passed {self.max_response_bytes} bytes; "
                            "ask for less in one request")

    def _run(self, call: Call) -> bytes | None:
        try:
            handler = self.methods.get(call.method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"method not found: {call.method}")
            result = handler(call.params)
        except RpcError as exc:
            return None if call.notification else encode_error(call.id, exc.code, exc.message)
        except ZgError as exc:
            return None if call.notification else encode_error(call.id, SERVER_ERROR, str(exc))
        except Exception:
            log.exception("internal error in %s", call.method)
            return None if call.notification else encode_error(call.id, INTERNAL_ERROR, f"internal error in {call.method}")
        if call.notification:
            return None
        return _encode({"jsonrpc": "2.0", "id": call.id, "result": result})


def rate_headers(refusal: RateRefusal) -> tuple[tuple[str, str], ...]:
    return (("retry-after", str(refusal.retry_after_s)),) if refusal.retry_after_s else ()


def _refusal(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpAnswer:
    return HttpAnswer(status, plain_error_body(status, "refused", message), headers)


async def run_in_worker(limiter: anyio.CapacityLimiter, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread of ``limiter`` (the service's bounded pool). On the edge's
    deadline the answer is abandoned (504 at once); the thread still holds its worker until it
    is done, so the pool stays bounded."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter, abandon_on_cancel=True)


def jsonrpc_app(server: JsonRpcServer, limiter: anyio.CapacityLimiter, routes: Sequence[BaseRoute]) -> Starlette:
    """A service's Starlette app: ``server`` on ``POST /`` (``jsonrpc_endpoint``), then its own
    ``routes``; an unknown path or method is answered in the edge's error shape."""
    endpoint = StarletteRoute("/", jsonrpc_endpoint(server, limiter), methods=["POST"])
    return Starlette(routes=[endpoint, *routes], exception_handlers=ENDPOINT_ERRORS)


def jsonrpc_endpoint(server: JsonRpcServer, limiter: anyio.CapacityLimiter) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``server``; parsing and every call run in a worker thread
    of ``limiter`` (the service's bounded pool), never in the event loop. A POST with neither
    ``Content-Length`` nor chunked framing is refused (411)."""

    async def endpoint(request: Request) -> Response:
        if "content-length" not in request.headers and "transfer-encoding" not in request.headers:
            return json_error(411, "Content-Length required", close=True)
        body = await request.body()
        caller = Caller(request.client.host if request.client else "", request.headers)
        answer = await run_in_worker(limiter, server.handle, body, caller)
        media_type = JSON_MEDIA_TYPE if answer.body else None
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers), media_type=media_type)

    return endpoint


# --- HTTP glue -------------------------------------------------------------------------------


def json_error(status: int, message: str, close: bool = False) -> JSONResponse:
    """The edge's error shape, ``{"error": message}``; ``close`` ends the connection after it."""
    return JSONResponse({"error": message}, status_code=status, headers={"connection": "close"} if close else None)


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_error(404, f"no such endpoint: {request.method} {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return json_error(405, f"{request.method} is not supported", close=True)


ENDPOINT_ERRORS = {404: _not_found, 405: _not_allowed}  # Starlette exception handlers


def rate_refusal(limiter: ClientRateLimiter | None, request: Request, cost: float, unit: str) -> Response | None:
    """Take ``cost`` from the caller's bucket: None if admitted, else the 429 to answer."""
    refusal = None if limiter is None else limiter.check(request.client.host if request.client else "", cost, unit)
    if refusal is None:
        return None
    return JSONResponse({"error": refusal.message}, status_code=429, headers=dict(rate_headers(refusal)))
