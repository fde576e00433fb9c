"""The guarded edge of a gRPC service: what any stranger's call may cost, and how bad input ends.

Every gRPC server zgos runs (the DA signers and the disperser) is built by ``guarded_server``:

* **Sizes**: messages in and out are capped per service (``GrpcLimits``); gRPC refuses a larger
  one with ``RESOURCE_EXHAUSTED`` before any handler runs.
* **Workers and queue**: ``workers`` handler threads; at most ``max_concurrent_calls`` calls are
  accepted at once, the rest get ``RESOURCE_EXHAUSTED`` (no unbounded queue).
* **Time**: a connection must finish its handshake within ``handshake_timeout_s``, answer
  keepalive pings, and is closed after ``max_connection_age_s`` (plus a grace for calls in
  flight) and after ``max_connection_idle_s`` without calls, so a slow or stuck client cannot
  hold one forever; a call whose own deadline passed while it waited for a worker is answered
  ``DEADLINE_EXCEEDED`` without doing its work. gRPC cannot stop a running Python handler, so
  each handler's work is bounded by its (capped) message instead: no loop runs longer than the
  request is big, and no per-item fallback multiplies it.
* **Bad input is the caller's error**: a request that does not parse as its protobuf message is
  answered ``INVALID_ARGUMENT`` naming the message (gRPC itself would answer ``INTERNAL`` and log
  a traceback); an exception a handler did not turn into a status is logged on one line and
  answered ``INTERNAL`` -- a bug, which the fuzz tests in ``tests/adversarial`` look for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

MS_PER_S = 1000


@dataclass(frozen=True)
class GrpcLimits:
    """What one service accepts; every field bounds a stranger's cost."""

    max_receive_bytes: int
    max_send_bytes: int
    workers: int = 8
    max_concurrent_calls: int = 32
    max_connection_age_s: float = 600.0
    max_connection_age_grace_s: float = 60.0
    max_connection_idle_s: float = 120.0
    handshake_timeout_s: float = 10.0
    keepalive_s: float = 60.0  # ping a connection this long silent; drop it if no answer in
    keepalive_timeout_s: float = 20.0

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", self.max_receive_bytes),
            ("grpc.max_send_message_length", self.max_send_bytes),
            ("grpc.max_connection_age_ms", int(self.max_connection_age_s * MS_PER_S)),
            ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_s * MS_PER_S)),
            ("grpc.max_connection_idle_ms", int(self.max_connection_idle_s * MS_PER_S)),
            ("grpc.server_handshake_timeout_ms", int(self.handshake_timeout_s * MS_PER_S)),
            ("grpc.keepalive_time_ms", int(self.keepalive_s * MS_PER_S)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * MS_PER_S)),
        ]


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for a request whose bytes did not parse; the guard answers INVALID_ARGUMENT."""

    reason: str


def _lenient(deserialize: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return MalformedRequest(f"{method}: the request is not a valid protobuf message ({exc or type(exc).__name__})")

    return parse


def _aborted(context: grpc.ServicerContext) -> bool:
    """True once the handler ended the call with ``context.abort`` (which raises)."""
    return context.code() is not None


def _guarded(behaviour: Callable[[Any, grpc.ServicerContext], Any], method: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{method}: the call's deadline passed while it waited")
        try:
            return behaviour(request, context)
        except Exception as exc:
            if _aborted(context):
                raise
            log.error("%s failed: %s: %s", method, type(exc).__name__, str(exc)[:200])
            log.debug("%s failed", method, exc_info=True)
            context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(exc).__name__})")

    return handle


class GuardInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps every unary-unary handler: lenient parsing, queue-deadline check, no tracebacks."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(details.method)
        return grpc.unary_unary_rpc_method_handler(
            _guarded(handler.unary_unary, method),
            request_deserializer=_lenient(handler.request_deserializer, method),
            response_serializer=handler.response_serializer,
        )


def guarded_server(register: Callable[[Any, grpc.Server], None], servicer: Any, host: str, port: int,
                   limits: GrpcLimits) -> grpc.Server:
    """Start a gRPC server for ``servicer`` on host:port under ``limits`` (returns at once)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(limits.workers, thread_name_prefix="grpc"),
        interceptors=[GuardInterceptor()],
        options=limits.options(),
        maximum_concurrent_rpcs=limits.max_concurrent_calls,
    )
    register(servicer, server)
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server
