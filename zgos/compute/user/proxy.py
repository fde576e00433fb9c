"""``zg compute serve``: a local OpenAI-compatible proxy that pays, verifies and routes.

The stock ``openai`` client points at ``http://127.0.0.1:8787/v1`` and works unchanged,
streaming included. For each call the proxy picks a provider of the requested model (cheapest
healthy first; failover to the next on connection errors, 5xx and credit refusals), signs the
exact body bytes it sends, and checks the answer (``ComputeUser.verify``) before signing a
receipt. A stream is forwarded event by event; its ``[DONE]`` is held back until the
provider's final signature event has been checked, and replaced by an error event if the
check fails. A stream cut short is paid for what arrived, never more
(``ComputeUser.verify_partial``). Funding stays within ``Funding.max_balance`` per sub-account: on a provider's
"insufficient balance" the proxy tops up by ``Funding.top_up`` only while under that bound,
and never more than ``Funding.max_per_day`` a day.

It holds the user's key, so it answers only its user (``proxy_server``): every route is a
local route of the guarded edge (``zgos.runtime.edge``): ``Host`` must be the bound address,
``Origin`` (if any) allow-listed, the body ``application/json``, and the install token present
(``Authorization: Bearer TOKEN``, the ``openai`` client's ``api_key``). Spending is bounded by
``zgos.compute.spec.limits``: providers above ``Router.max_price`` are never used, and a request
whose worst case would pass a spend cap is refused (429) before anything is signed. A call to a
provider ends by a total deadline and reads at most ``limits.compute_answer_cap_bytes``
(``zgos.compute.pool``, which also holds the outbound address policy); a provider that breaks
either is avoided for a growing backoff.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/verify {id}``,
``GET /v1/providers`` (router state and flags), ``GET /v1/spending`` (caps and what was spent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from zgos.compute.contracts import ServiceInfo
from zgos.compute.pool import Answer, Pool, PoolError, PoolTimeout, PoolTooLarge
from zgos.compute.provider.wire import (
    HEADER_RESPONSE,
    HEADER_RESPONSE_ID,
    BadBody,
    ErrorBody,
    ModelCard,
    ModelList,
    decode_body,
)
from zgos.compute.relay import Ended, RelayResponse, Write
from zgos.compute.spec import routing, sse
from zgos.compute.spec.billing import MAX_BODY_BYTES, InvalidChatRequest
from zgos.compute.spec.limits import CapReached, SpendCaps, compute_answer_cap_bytes
from zgos.compute.user.budget import Budget, Hold
from zgos.compute.user.client import (
    ComputeUser,
    ProviderError,
    SignedRequest,
    body_with_defaults,
    error_of_body,
)
from zgos.compute.user.payer import Payer
from zgos.compute.user.router import Router
from zgos.compute.user.verification import ResponseRejected
from zgos.compute.user.wire import ChatCall, ProvidersView, SpendingSummary, VerifyCall
from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.edge import EdgePolicy, Route, parse_json
from zgos.runtime.serve import hardened_server

RETRYABLE_KINDS = ("insufficient-credit",)
FALL_BACK_STATUSES = frozenset({404, 502, 503, 504})  # no provider of a model, or every one failed
SIGNATURE_MARK = b"event: " + sse.SIGNATURE_EVENT + b"\n"
CONNECT_TIMEOUT_S = 5.0
SMALL_ANSWER_BYTES = 64 * 1024  # a receipt's or a signature's answer
SMALL_BODY_BYTES = 4 * 1024  # {"id": ...} and friends
LOCAL_DEADLINE_S = 30.0  # local routes that do not wait on a model
EDGE_MARGIN_S = 15.0  # the local answer's deadline beyond the provider's: verify, sign, receipt


@dataclass(frozen=True)
class Funding:
    """Auto top-up of a sub-account: add ``top_up`` neuron when a provider reports an
    insufficient balance, but never let the sub-account exceed ``max_balance``, and never top
    up more than ``max_per_day`` in any 24 hours (None: no daily cap)."""

    top_up: int
    max_balance: int
    max_per_day: int | None = None


def openai_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody.of(status, kind, message).model_dump(), status_code=status, headers=headers)


def cap_error(exc: CapReached) -> JSONResponse:
    """429 with ``Retry-After`` when waiting helps, else 402: nothing was signed."""
    if exc.retry_after_s is None:
        return openai_error(402, "spend_limit_reached", str(exc))
    return openai_error(429, "spend_limit_reached", str(exc), {"retry-after": str(math.ceil(exc.retry_after_s))})


class UserProxy:
    """The proxy's parts: the user's client, the router, funding, the budget (spend caps, kept
    in the user's state dir) and one pool of connections (address policy) for every provider call."""

    def __init__(self, user: ComputeUser, router: Router, funding: Funding | None = None,
                 timeout_s: float = 120.0, caps: SpendCaps = SpendCaps(),
                 address_policy: AddressPolicy = OPEN_POLICY) -> None:
        self.user = user
        self.router = router
        self.funding = funding
        self.timeout_s = timeout_s
        self.budget = Budget(user.state_dir / f"spending-{user.address}.sqlite", caps,
                             funding.max_per_day if funding else None, hold_s=timeout_s + EDGE_MARGIN_S)
        user.on_receipt = self.budget.record_spend
        self.client = Pool(timeout_s=timeout_s, connect_timeout_s=CONNECT_TIMEOUT_S,
                           max_answer_bytes=SMALL_ANSWER_BYTES, policy=address_policy)
        self.payer = Payer(user, router, self.client)
        self.app = FastAPI(title="zgos compute local proxy", lifespan=self._lifespan)
        self._routes()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        yield
        await self.client.close()

    def policy(self, access: LocalAccess) -> EdgePolicy:
        """Every route is local (Host, Origin, install token); chat bodies up to the billing
        cap and for as long as a provider call may take, the rest small and quick."""
        return EdgePolicy(routes=(
            Route("/", max_body_bytes=SMALL_BODY_BYTES, deadline_s=LOCAL_DEADLINE_S, local=True),
            Route("/v1/chat/completions", max_body_bytes=MAX_BODY_BYTES,
                  deadline_s=self.timeout_s + EDGE_MARGIN_S, local=True),
        ), access=access)

    def _routes(self) -> None:
        """Each route parses its input into a model (``wire``) once and calls the proxy's parts."""
        app = self.app
        app.get("/v1/models")(self.models)
        app.get("/v1/providers")(self.providers)
        app.get("/v1/spending")(self.spending)
        app.post("/v1/verify")(self.verify)
        app.post("/v1/chat/completions")(self.chat)

    async def models(self) -> ModelList:
        services = await asyncio.to_thread(self.router.services)
        return ModelList(data=[ModelCard(id=m, owned_by="zgos") for m in sorted({s.model for s in services})])

    async def providers(self) -> ProvidersView:
        services = await asyncio.to_thread(self.router.services)
        return self.router.describe(services)

    async def spending(self) -> SpendingSummary:
        return self.budget.summary()

    async def verify(self, request: Request) -> Response:
        try:
            call = decode_body(VerifyCall, await request.body())
        except BadBody:
            return openai_error(400, "invalid_request_error", "body must be {\"id\": RESPONSE_ID}")
        try:
            return JSONResponse(await asyncio.to_thread(self.user.verify_stored, call.id))
        except ZgError as exc:
            return openai_error(404, "not_found", str(exc))

    async def chat(self, request: Request) -> Response:
        """The body is forwarded as given, ``max_tokens`` defaulted and the routing fields
        (``provider``, ``models``: OpenRouter's) taken out: it is what gets signed."""
        try:
            data = parse_json(await request.body())
            call = ChatCall.model_validate(data)
            preferences = routing.parse_preferences(data.pop(routing.PROVIDER_FIELD, None))
            models = routing.parse_models(data.get("model"), data.pop(routing.MODELS_FIELD, None))
            bodies = [(model, body_with_defaults(data, model)) for model in models]
        except ValidationError:
            return openai_error(400, "invalid_request_error", "bad request body: body must be a JSON object with a model")
        except ValueError as exc:  # InvalidJson, InvalidRouting, or a body json cannot write back
            return openai_error(400, "invalid_request_error", f"bad request body: {exc}")
        last = openai_error(404, "model_not_found", "no model to route")
        for model, body in bodies:  # the fallbacks, while no provider of the one before answered
            last = await self._route(model, body, call.streaming, preferences)
            if last.status_code not in FALL_BACK_STATUSES:
                return last
        return last

    async def _route(self, model: str, body: bytes, stream: bool, preferences: routing.RoutingPreferences) -> Response:
        candidates = await asyncio.to_thread(self.router.candidates, model, preferences)
        if not candidates:
            cap = "" if self.router.max_price is None else f", within the price cap of {self.router.max_price} neuron"
            return openai_error(404, "model_not_found", f"no usable provider serves model {model!r} (registered{cap}, "
                                "within the request's provider preferences, not backed off: see GET /v1/providers)")
        last: ProviderError | None = None
        for service in candidates:
            try:
                max_fee = await asyncio.to_thread(self.user.max_fee, service, body)
                hold = self.budget.hold(max_fee)  # before anything is signed
            except CapReached as exc:
                return cap_error(exc)
            except InvalidChatRequest as exc:
                return openai_error(400, "invalid_request_error", str(exc))
            handed_over = False
            try:
                response = await self._call(service, body, stream, max_fee)
                handed_over = self._release_after(response, hold)
                return response
            except ProviderError as exc:
                last = exc
                if exc.status == 0 or exc.status >= 500 or exc.kind in RETRYABLE_KINDS:
                    self.router.failed(service.provider, str(exc))
                    continue
                return openai_error(exc.status, exc.kind, str(exc))
            except PoolError as exc:  # the answer broke off, stalled or broke the size cap
                last = ProviderError(service.provider, 0, "provider_failed", f"{service.url}: {exc}")
                self._failed(service, exc)
                continue
            except ResponseRejected as exc:
                self.router.flag(service.provider, exc.reason)
                return openai_error(502, "response_rejected", str(exc))
            except InvalidChatRequest as exc:
                return openai_error(400, "invalid_request_error", str(exc))
            finally:
                if not handed_over:  # a plain answer's receipt is signed by now
                    self.budget.release(hold)
        assert last is not None
        return openai_error(last.status or 502, last.kind, f"every provider of {model!r} failed; last: {last}")

    def _release_after(self, response: Response, hold: Hold) -> bool:
        """Make a stream release its hold when it ends (its receipt is signed by then, or its
        partial payment under way); say whether the hold was handed over."""
        if not isinstance(response, RelayResponse):
            return False
        finish = response.finish

        async def finish_then_release(ended: Ended, write: Write) -> None:
            try:
                await finish(ended, write)
            finally:
                self.budget.release(hold)

        response.finish = finish_then_release
        return True

    def _failed(self, service: ServiceInfo, exc: PoolError) -> None:
        """A call broke: a stalled or oversized answer is misbehaviour (avoided), the rest a failure."""
        if isinstance(exc, PoolTimeout | PoolTooLarge):
            self.router.misbehaved(service.provider, str(exc))
        else:
            self.router.failed(service.provider, str(exc))

    async def _send(self, service: ServiceInfo, body: bytes, max_fee: int) -> tuple[SignedRequest, Answer]:
        """Sign and send; fix an unacknowledged signer or a low balance once, then retry."""
        fixed: set[str] = set()
        while True:
            signed = await asyncio.to_thread(self.user.sign_request, service, body, max_fee)
            try:
                answer = await self.client.post(service.url.rstrip("/") + "/v1/proxy/chat/completions", body,
                                                signed.headers, timeout_s=self.timeout_s,
                                                max_bytes=compute_answer_cap_bytes(signed.max_tokens))
            except (PoolTimeout, PoolTooLarge):
                raise
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
        """Top up within the balance bound and the daily cap (``ProviderError`` 402 past it)."""
        if self.funding is None:
            return False
        account = await asyncio.to_thread(self.user.contracts.sub_account, self.user.address, service.provider)
        if account.balance + self.funding.top_up > self.funding.max_balance:
            return False
        try:
            self.budget.take_top_up(service.provider, self.funding.top_up)
        except CapReached as exc:
            raise ProviderError(service.provider, 402, "top_up_limit_reached",
                                f"insufficient balance, and automatic top-ups reached their cap: {exc}") from None
        await asyncio.to_thread(self.user.fund, service.provider, self.funding.top_up)
        return True

    async def _call(self, service: ServiceInfo, body: bytes, stream: bool, max_fee: int) -> Response:
        started = time.monotonic()
        signed, answer = await self._send(service, body, max_fee)
        self.router.measured(service.provider, time.monotonic() - started)
        if not stream:
            try:
                data = await answer.read()
            finally:
                answer.close()
            verified = await asyncio.to_thread(self.payer.verify_and_accept, service, signed, data,
                                               answer.headers.get(HEADER_RESPONSE))
            self.payer.send_receipt(service, verified)
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
        paid for what arrived (``Payer.pay_partial``, in the background)."""
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
            await self._finish_stream(service, signed, answer, received, ended, write)

        return RelayResponse(pump, finish, headers={HEADER_RESPONSE_ID: "0x" + signed.request_hash.hex(),
                                                    "zg-provider": service.provider})

    async def _finish_stream(self, service: ServiceInfo, signed: SignedRequest, answer: Answer,
                             received: _Received, ended: Ended, write: Write) -> None:
        """Close a forwarded stream: check its signature event and receipt it, or pay what
        arrived of a stream cut short; then send the held-back ``[DONE]`` or an error event."""
        answer.close()  # unread: drops the connection, the provider stops its model
        if isinstance(ended.error, PoolError):
            self._failed(service, ended.error)
        output = sse.stream_output(received.events)
        if received.signature is None:
            if not ended.client_left:
                error = {"error": {"message": "the provider's stream broke off; what arrived is paid for",
                                   "type": "stream_cut", "code": 502}}
                await write(sse.format_event(json.dumps(error).encode()))
            self.payer.background_task(self.payer.pay_partial(service, signed, output,
                                                             sse.stream_text(received.events)))
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
        verified = await asyncio.to_thread(self.user.accept, service, signed, response, sse.stream_text(received.events))
        self.payer.send_receipt(service, verified)
        self.router.succeeded(service.provider)
        if received.done is None:  # the provider signed a stream its model server cut short
            error = {"error": {"message": "the provider's model server broke off; the partial answer is "
                                          "signed and paid for", "type": "stream_cut", "code": 502}}
            await write(sse.format_event(json.dumps(error).encode()))
            return
        await write(received.done)


def proxy_server(proxy: UserProxy, *, host: str, port: int, token: str, origins: Iterable[str] = ()
                 ) -> uvicorn.Server:
    """``proxy`` on ``host:port`` behind the guarded edge: only requests addressed to this
    listener, from its own pages or ``origins``, carrying ``token``."""
    access = LocalAccess.for_listener(token, host, port, origins=origins)
    return hardened_server(proxy.app, host=host, port=port, policy=proxy.policy(access))


@dataclass
class _Received:
    """What arrived of a provider's stream: its bytes, its events (signature event aside)."""

    raw: bytearray = field(default_factory=bytearray)
    splitter: sse.EventSplitter = field(default_factory=sse.EventSplitter)
    events: list[bytes] = field(default_factory=list)
    done: bytes | None = None
    signature: str | None = None
