"""``zg compute serve``: a local OpenAI-compatible proxy that pays, verifies and routes.

The stock ``openai`` client points at ``http://127.0.0.1:8787/v1`` and works unchanged,
streaming included. For each call the proxy picks a provider of the requested model (cheapest
healthy first; failover to the next on connection errors, 5xx and credit refusals), signs the
exact body bytes it sends, and checks the answer (``ComputeUser.verify``) before signing a
receipt. A stream is forwarded event by event; its ``[DONE]`` is held back until the
provider's final signature event has been checked, and replaced by an error event if the
check fails. A stream cut short is paid for what arrived, never more (``ComputeUser.verify_partial``). Funding stays within ``Funding.max_balance`` per sub-account: on a provider's
"insufficient balance" the proxy tops up by ``Funding.top_up`` only while under that bound.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/verify {id}``,
``GET /v1/providers`` (router state and flags).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from zgos.compute import sse
from zgos.compute.billing import InvalidChatRequest
from zgos.compute.ledger import ServiceInfo
from zgos.compute.pool import Answer, Pool, PoolError
from zgos.compute.provider.broker import HEADER_RESPONSE, HEADER_RESPONSE_ID
from zgos.compute.relay import Ended, RelayResponse, Write
from zgos.compute.user.client import (
    ComputeUser,
    ProviderError,
    ResponseRejected,
    SignedRequest,
    Verified,
    body_with_defaults,
    error_of_body,
)
from zgos.core.errors import ZgError

FAILURE_BACKOFF_S = 10.0
FLAG_BACKOFF_S = 3600.0
SERVICE_REFRESH_S = 30.0
RETRYABLE_KINDS = ("insufficient-credit",)
SIGNATURE_MARK = b"event: " + sse.SIGNATURE_EVENT + b"\n"
CONNECT_TIMEOUT_S = 5.0
RECEIPT_TIMEOUT_S = 10.0
PARTIAL_SIGNATURE_ATTEMPTS = 20  # the signed Response of a cut stream: asked for this many times,
PARTIAL_SIGNATURE_WAIT_S = 0.25  # this far apart,
PARTIAL_SIGNATURE_TIMEOUT_S = 5.0  # each answer within this


@dataclass(frozen=True)
class Funding:
    """Auto top-up of a sub-account: add ``top_up`` neuron when a provider reports an
    insufficient balance, but never let the sub-account exceed ``max_balance``."""

    top_up: int
    max_balance: int


@dataclass
class ProviderHealth:
    failures: int = 0
    unhealthy_until: float = 0.0
    flagged: list[str] = field(default_factory=list)
    served: int = 0


class Router:
    """Orders the providers of a model by health, then price (input + output per token)."""

    def __init__(self, user: ComputeUser, only: list[str] | None = None) -> None:
        self.user = user
        self.only = {p.lower() for p in only} if only else None
        self.health: dict[str, ProviderHealth] = {}
        self._services: list[ServiceInfo] = []
        self._fetched = 0.0

    def services(self) -> list[ServiceInfo]:
        if time.monotonic() - self._fetched > SERVICE_REFRESH_S:
            self._services = [s for s in self.user.providers()
                              if self.only is None or s.provider.lower() in self.only]
            self._fetched = time.monotonic()
        return self._services

    def _health(self, provider: str) -> ProviderHealth:
        return self.health.setdefault(provider, ProviderHealth())

    def candidates(self, model: str) -> list[ServiceInfo]:
        now = time.monotonic()
        matching = [s for s in self.services() if s.model == model]
        return sorted(matching, key=lambda s: (self._health(s.provider).unhealthy_until > now,
                                               s.input_price + s.output_price))

    def failed(self, provider: str) -> None:
        health = self._health(provider)
        health.failures += 1
        health.unhealthy_until = time.monotonic() + FAILURE_BACKOFF_S

    def succeeded(self, provider: str) -> None:
        health = self._health(provider)
        health.failures = 0
        health.unhealthy_until = 0.0
        health.served += 1

    def flag(self, provider: str, reason: str) -> None:
        health = self._health(provider)
        health.flagged.append(reason)
        health.unhealthy_until = time.monotonic() + FLAG_BACKOFF_S


def openai_error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


class UserProxy:
    def __init__(self, user: ComputeUser, router: Router, funding: Funding | None = None,
                 timeout_s: float = 120.0) -> None:
        self.user = user
        self.router = router
        self.funding = funding
        self.client = Pool(timeout_s=timeout_s, connect_timeout_s=CONNECT_TIMEOUT_S)
        self._background: set[asyncio.Task[Any]] = set()
        self.app = FastAPI(title="zgos compute local proxy", lifespan=self._lifespan)
        self._routes()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        yield
        await self.client.close()

    def _routes(self) -> None:
        app = self.app

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            services = await asyncio.to_thread(self.router.services)
            seen = sorted({s.model for s in services})
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "zgos"} for m in seen]}

        @app.get("/v1/providers")
        async def providers() -> dict[str, Any]:
            services = await asyncio.to_thread(self.router.services)
            return {"providers": [
                {"provider": s.provider, "model": s.model, "url": s.url, "input_price": s.input_price,
                 "output_price": s.output_price, **vars(self.router._health(s.provider))} for s in services]}

        @app.post("/v1/verify")
        async def verify(request: Request) -> Response:
            try:
                response_id = str((await request.json())["id"])
                return JSONResponse(await asyncio.to_thread(self.user.verify_stored, response_id))
            except (ValueError, KeyError, TypeError):
                return openai_error(400, "invalid_request_error", "body must be {\"id\": RESPONSE_ID}")
            except ZgError as exc:
                return openai_error(404, "not_found", str(exc))

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            try:
                data = json.loads(await request.body())
                if not isinstance(data, dict) or not isinstance(data.get("model"), str):
                    raise ValueError("body must be a JSON object with a model")
                body = body_with_defaults(data)
            except ValueError as exc:
                return openai_error(400, "invalid_request_error", f"bad request body: {exc}")
            return await self._route(str(data["model"]), body, data.get("stream") is True)

    async def _route(self, model: str, body: bytes, stream: bool) -> Response:
        candidates = await asyncio.to_thread(self.router.candidates, model)
        if not candidates:
            return openai_error(404, "model_not_found", f"no registered provider serves model {model!r}")
        last: ProviderError | None = None
        for service in candidates:
            try:
                return await self._call(service, body, stream)
            except ProviderError as exc:
                last = exc
                if exc.status == 0 or exc.status >= 500 or exc.kind in RETRYABLE_KINDS:
                    self.router.failed(service.provider)
                    continue
                return openai_error(exc.status, exc.kind, str(exc))
            except ResponseRejected as exc:
                self.router.flag(service.provider, exc.reason)
                return openai_error(502, "response_rejected", str(exc))
            except InvalidChatRequest as exc:
                return openai_error(400, "invalid_request_error", str(exc))
        assert last is not None
        return openai_error(last.status or 502, last.kind, f"every provider of {model!r} failed; last: {last}")

    async def _send(self, service: ServiceInfo, body: bytes) -> tuple[SignedRequest, Answer]:
        """Sign and send; fix an unacknowledged signer or a low balance once, then retry."""
        fixed: set[str] = set()
        while True:
            signed = await asyncio.to_thread(self.user.sign_request, service, body)
            try:
                answer = await self.client.post(service.url.rstrip("/") + "/v1/proxy/chat/completions", body,
                                                signed.headers)
            except PoolError as exc:
                raise ProviderError(service.provider, 0, "unreachable", str(exc)) from None
            if answer.status == 200:
                return signed, answer
            try:
                kind, message = error_of_body(await answer.read())
            except PoolError as exc:
                kind, message = "unreachable", str(exc)
            finally:
                answer.close()
            if kind == "not-acknowledged" and kind not in fixed:
                fixed.add(kind)
                await asyncio.to_thread(self.user.acknowledge, service)
                continue
            if kind == "insufficient-balance" and kind not in fixed and await self._top_up(service):
                fixed.add(kind)
                continue
            raise ProviderError(service.provider, answer.status, kind, message)

    async def _top_up(self, service: ServiceInfo) -> bool:
        if self.funding is None:
            return False
        account = await asyncio.to_thread(self.user.contracts.sub_account, self.user.address, service.provider)
        if account.balance + self.funding.top_up > self.funding.max_balance:
            return False
        await asyncio.to_thread(self.user.fund, service.provider, self.funding.top_up)
        return True

    async def _call(self, service: ServiceInfo, body: bytes, stream: bool) -> Response:
        signed, answer = await self._send(service, body)
        if not stream:
            try:
                data = await answer.read()
            except PoolError as exc:
                raise ProviderError(service.provider, 0, "unreachable", str(exc)) from None
            finally:
                answer.close()
            verified = await asyncio.to_thread(self._verify_and_accept, service, signed, data,
                                               answer.headers.get(HEADER_RESPONSE))
            self._send_receipt(service, verified)
            self.router.succeeded(service.provider)
            return Response(data, media_type="application/json",
                            headers={HEADER_RESPONSE_ID: verified.response_id, "zg-verified": "true",
                                     "zg-provider": service.provider})
        return self._stream(service, signed, answer)

    def _stream(self, service: ServiceInfo, signed: SignedRequest, answer: Answer) -> RelayResponse:
        """Forward the provider's stream event by event, holding back ``[DONE]`` until its
        signature event is checked (an error event replaces it if the check fails).

        A stream cut short — the app left (the provider's connection is dropped at once, so
        its model stops), or the provider's stream broke or ended without a signature — is
        paid for what arrived (``_pay_partial``, in the background)."""
        received = _Received()

        async def pump(write: Write) -> None:
            async for chunk in answer.chunks():
                received.raw += chunk
                for event in received.splitter.feed(chunk):
                    if sse.is_signature_event(event):
                        received.signature = sse.event_fields(event)[1].decode(errors="replace")
                        continue
                    received.events.append(event)
                    if sse.is_done_event(event):
                        received.done = event
                        continue
                    await write(event)

        async def finish(ended: Ended, write: Write) -> None:
            answer.close()  # unread: drops the connection, the provider stops its model
            output = sse.stream_output(received.events)
            if received.signature is None:
                if not ended.client_left:
                    error = {"error": {"message": "the provider's stream broke off; what arrived is paid for",
                                       "type": "stream_cut", "code": 502}}
                    await write(sse.format_event(json.dumps(error).encode()))
                self._background_task(self._pay_partial(service, signed, output, sse.stream_text(received.events)))
                return
            mark = received.raw.rfind(SIGNATURE_MARK)
            try:
                response = await asyncio.to_thread(self.user.verify, service, signed, bytes(received.raw[:mark]),
                                                   received.signature, output)
            except ResponseRejected as exc:
                self.router.flag(service.provider, exc.reason)
                error = {"error": {"message": str(exc), "type": "response_rejected", "code": 502}}
                await write(sse.format_event(json.dumps(error).encode()))
                return
            verified = await asyncio.to_thread(self.user.accept, service, response, sse.stream_text(received.events))
            self._send_receipt(service, verified)
            self.router.succeeded(service.provider)
            if received.done is None:  # the provider signed a stream its model server cut short
                error = {"error": {"message": "the provider's model server broke off; the partial answer is "
                                              "signed and paid for", "type": "stream_cut", "code": 502}}
                await write(sse.format_event(json.dumps(error).encode()))
                return
            await write(received.done)

        return RelayResponse(pump, finish, headers={HEADER_RESPONSE_ID: "0x" + signed.request_hash.hex(),
                                                    "zg-provider": service.provider})

    async def _pay_partial(self, service: ServiceInfo, signed: SignedRequest, output: list[str], text: str) -> None:
        """Receipt a stream cut short for what arrived: fetch the provider's signed Response
        for it (it is written when the provider notices the cut) and pay the smaller of its
        fee and the fee of what arrived. No signed Response, no receipt."""
        url = f"{service.url.rstrip('/')}/v1/proxy/signature/0x{signed.request_hash.hex()}"
        signed_response = None
        for _ in range(PARTIAL_SIGNATURE_ATTEMPTS):
            try:
                status, data = await self.client.get(url, timeout_s=PARTIAL_SIGNATURE_TIMEOUT_S)
            except PoolError:
                status, data = 0, b""
            if status == 200:
                signed_response = data.decode(errors="replace")
                break
            await asyncio.sleep(PARTIAL_SIGNATURE_WAIT_S)
        if signed_response is None:
            return
        try:
            response, amount = await asyncio.to_thread(self.user.verify_partial, service, signed, signed_response,
                                                       output)
        except ResponseRejected as exc:
            self.router.flag(service.provider, exc.reason)
            return
        verified = await asyncio.to_thread(self.user.accept, service, response, text, amount)
        self._send_receipt(service, verified)

    def _verify_and_accept(self, service: ServiceInfo, signed: SignedRequest, data: bytes,
                           signed_response: str | None) -> Verified:
        """Check a plain answer and sign its receipt (one trip to a worker thread)."""
        response = self.user.verify(service, signed, data, signed_response, sse.body_output(data))
        return self.user.accept(service, response, sse.body_text(data))

    def _send_receipt(self, service: ServiceInfo, verified: Verified) -> None:
        async def post() -> None:
            # If this post is lost, the next receipt (cumulative) carries its amount too.
            with contextlib.suppress(PoolError):
                await self.client.post_json(service.url.rstrip("/") + "/v1/proxy/receipt",
                                            self.user.receipt_payload(verified), timeout_s=RECEIPT_TIMEOUT_S)

        self._background_task(post())

    def _background_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


@dataclass
class _Received:
    """What arrived of a provider's stream: its bytes, its events (signature event aside)."""

    raw: bytearray = field(default_factory=bytearray)
    splitter: sse.EventSplitter = field(default_factory=sse.EventSplitter)
    events: list[bytes] = field(default_factory=list)
    done: bytes | None = None
    signature: str | None = None
