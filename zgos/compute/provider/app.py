"""The broker's HTTP surface (FastAPI on uvicorn, httpx to the model server).

Public (``/v1/proxy``, compute.md §7): ``POST /chat/completions`` (stream and non-stream,
paid), ``GET /models``, ``GET /signature/{id}``, ``GET /attestation``, ``POST /receipt``,
and ``GET /health``. Admin, on a separate listener bound to 127.0.0.1: ``GET /v1/status``,
``GET /v1/user/{address}``, ``POST /v1/settle``. Errors are JSON ``{"error": {"message", "type", "code"}}`` with a 4xx
(bad request, unpaid, refused) or 502/504 (model server down/slow; nothing billed).

Both listeners run behind the guarded edge (``zgos.runtime.edge``, limits in ``public_policy``
and ``admin_policy``): JSON bodies only, chat bodies up to ``billing.MAX_BODY_BYTES``, receipts
and everything else up to ``SMALL_BODY_BYTES``, total deadlines per route; the admin routes
answer only calls addressed to 127.0.0.1 that carry the install token. The benchmark measures
what the public edge costs by starting a broker with ``ZGOS_BENCH_UNGUARDED=1`` in its
environment (``BENCH_UNGUARDED_ENV``); nothing else sets it, and the broker says so loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import sha3
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from zgos.compute import sse
from zgos.compute import vouchers as v
from zgos.compute.billing import MAX_BODY_BYTES
from zgos.compute.provider.broker import (
    HEADER_RESPONSE,
    HEADER_RESPONSE_ID,
    Admitted,
    Broker,
    BrokerConfig,
    BrokerError,
)
from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256
from zgos.runtime.edge import (
    EdgePolicy,
    InvalidJson,
    LocalAccess,
    Route,
    hardened_server,
    parse_json,
)

log = logging.getLogger(__name__)

REFUND_WATCH_S = 3.0
SERVICE_RELOAD_S = 30.0  # re-read the on-chain service record (prices) this often
SMALL_BODY_BYTES = 4 * 1024  # a receipt is ~250 bytes of JSON
PUBLIC_DEADLINE_S = 30.0  # routes that do not wait on the model
ADMIN_DEADLINE_S = 120.0  # a settlement waits for its transaction
EDGE_MARGIN_S = 10.0  # a chat's deadline beyond the model server's timeout: billing and signing
BENCH_UNGUARDED_ENV = "ZGOS_BENCH_UNGUARDED"  # "1": public edge off (bench only; as for the storage node)
ATTESTATION_NOTE = (
    "No TEE: this provider runs on ordinary hardware with no trusted execution environment, "
    "so nothing proves which code produced an answer. What is proven: every answer is signed "
    "by the registered signer over the request hash, the response bytes, the model id and "
    "sha256, token usage and fee; and the chain pays only amounts the user signed receipts for."
)
_CONTENT = re.compile(rb'"content":\s*"')


def error_response(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": reason, "code": status}}, status_code=status)


def _alter(data: bytes) -> bytes:
    """Dishonest test mode: change the answer's text after it was hashed and signed."""
    return _CONTENT.sub(lambda m: m.group(0) + b"ALTERED ", data, count=1)


class BrokerApp:
    """The public and admin FastAPI apps of one broker, sharing one httpx client."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        config = broker.config
        self.upstream = config.upstream_url.rstrip("/")
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.upstream_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.public = FastAPI(title="zgos provider broker", lifespan=self._lifespan)
        self.admin = FastAPI(title="zgos provider broker admin")
        for app in (self.public, self.admin):
            app.add_exception_handler(BrokerError, self._on_broker_error)  # type: ignore[arg-type]
        self._routes()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        try:
            await self.broker.settle_due(everything=True)
        except ZgError as exc:
            log.warning("settlement at start failed: %s", exc)
        task = asyncio.create_task(self._settle_loop())
        yield
        task.cancel()
        await self.client.aclose()

    async def _settle_loop(self) -> None:
        interval = self.broker.config.settle_interval_s
        last_full = last_reload = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(min(REFUND_WATCH_S, interval))
            now = asyncio.get_running_loop().time()
            full = now - last_full >= interval
            try:
                if now - last_reload >= SERVICE_RELOAD_S:
                    last_reload = now
                    await asyncio.to_thread(self.broker.load_service)  # prices may have been updated
                await self.broker.settle_due(everything=full)
            except Exception as exc:  # keep settling on schedule whatever one round hit
                log.warning("settlement failed: %s", exc)
            if full:
                last_full = now

    async def _on_broker_error(self, request: Request, exc: BrokerError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.message)

    def _routes(self) -> None:
        public, admin, broker = self.public, self.admin, self.broker

        @public.get("/health")
        async def health() -> dict[str, Any]:
            return {"ok": True, "provider": broker.address, "model": broker.config.model_id}

        @public.get("/v1/proxy/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [
                {"id": broker.config.model_id, "object": "model", "owned_by": broker.address,
                 "model_hash": "0x" + broker.config.model_hash.hex()}]}

        @public.get("/v1/proxy/attestation")
        async def attestation(nonce: str = "") -> dict[str, Any]:
            challenge = f"zgos provider {broker.address} signer {broker.signer_address} nonce {nonce}"
            digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(challenge)).encode() + challenge.encode())
            return {
                "provider": broker.address, "signer": broker.signer_address, "tee": False,
                "note": ATTESTATION_NOTE, "model_id": broker.config.model_id,
                "model_hash": "0x" + broker.config.model_hash.hex(),
                "key_proof": {"message": challenge, "signature": "0x" + v.sign_digest(bytes(broker.signer.key), digest).hex(),
                              "scheme": "EIP-191 personal_sign"},
            }

        @public.get("/v1/proxy/signature/{response_id}")
        async def signature(response_id: str) -> Response:
            signed = await asyncio.to_thread(broker.log.signed_response, response_id.lower())
            if signed is None:
                return error_response(404, "unknown-response", f"no signed response with id {response_id}")
            return Response(signed, media_type="application/json")

        @public.post("/v1/proxy/receipt")
        async def receipt(request: Request) -> dict[str, Any]:
            try:
                data = parse_json(await request.body())
                user, total = str(data["user"]), int(data["total"])
                sig = v.decode_hex(str(data["signature"]), v.SIGNATURE_BYTES)
            except (InvalidJson, ValueError, KeyError, TypeError, v.InvalidMessage) as exc:
                raise BrokerError(400, "bad-receipt", f"receipt must be {{user, total, signature}}: {exc}") from None
            return {"user": user, "receipted": await broker.accept_receipt(user, total, sig)}

        @public.post("/v1/proxy/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): val for k, val in request.headers.items()}
            admitted = await broker.admit(body, headers)
            return await self._forward(admitted, body)

        @admin.get("/v1/status")
        async def status() -> dict[str, Any]:
            return await asyncio.to_thread(broker.status)

        @admin.get("/v1/user/{address}")
        async def user(address: str) -> dict[str, Any]:
            book = broker.books.get(address.lower())
            if book is None:
                raise BrokerError(404, "unknown-user", f"no requests from {address}")
            return {"user": address.lower(), "served": book.served, "receipted": book.receipted,
                    "inflight": book.inflight, "requests": book.requests}

        @admin.post("/v1/settle")
        async def settle() -> dict[str, Any]:
            return await broker.settle_due(everything=True)

    async def _open_upstream(self, admitted: Admitted, body: bytes) -> httpx.Response:
        """Send the request upstream: the whole answer for a plain request, the headers (body
        still streaming) for a stream. Failures release the reservation and raise 502/504."""
        request = self.client.build_request(
            "POST", self.upstream + "/v1/chat/completions", content=body,
            headers={"content-type": "application/json", "accept-encoding": "identity"},
        )
        try:
            response = await self.client.send(request, stream=admitted.chat.stream)
        except httpx.TimeoutException:
            await self.broker.abandon(admitted)
            raise BrokerError(504, "upstream-timeout",
                              f"the model server did not answer within {self.broker.config.upstream_timeout_s:g}s; "
                              "nothing was charged") from None
        except httpx.HTTPError as exc:
            await self.broker.abandon(admitted)
            raise BrokerError(502, "upstream-unreachable",
                              f"the model server is unreachable or broke off ({type(exc).__name__}); "
                              "nothing was charged") from None
        if response.status_code != 200:
            detail = (await response.aread())[:300].decode(errors="replace")
            await response.aclose()
            await self.broker.abandon(admitted)
            status = 400 if 400 <= response.status_code < 500 else 502
            raise BrokerError(status, "upstream-error",
                              f"the model server answered HTTP {response.status_code}: {detail}; nothing was charged")
        return response

    async def _forward(self, admitted: Admitted, body: bytes) -> Response:
        upstream = await self._open_upstream(admitted, body)
        response_id = "0x" + admitted.request_hash.hex()
        if not admitted.chat.stream:
            data = upstream.content
            usage = self.broker.usage_of(admitted, sse.body_text(data))
            signed = await self.broker.finish(admitted, usage, v.compute_body_hash(data))
            if self.broker.config.dishonest == "alter":
                data = _alter(data)
            return Response(data, media_type="application/json",
                            headers={HEADER_RESPONSE: signed, HEADER_RESPONSE_ID: response_id})
        return StreamingResponse(self._stream(admitted, upstream), media_type="text/event-stream",
                                 headers={HEADER_RESPONSE_ID: response_id, "cache-control": "no-cache"})

    async def _stream(self, admitted: Admitted, upstream: httpx.Response) -> AsyncIterator[bytes]:
        hasher = sha3.keccak_256()
        splitter = sse.EventSplitter()
        events: list[bytes] = []
        billed = False
        try:
            async for chunk in upstream.aiter_raw():
                hasher.update(chunk)
                events += splitter.feed(chunk)
                yield _alter(chunk) if self.broker.config.dishonest == "alter" else chunk
            usage = self.broker.usage_of(admitted, sse.stream_text(events))
            signed = await self.broker.finish(admitted, usage, hasher.digest())
            billed = True
            yield sse.format_signature_event(signed)
        finally:
            await upstream.aclose()
            if not billed:
                await self.broker.abandon(admitted)


def public_policy(config: BrokerConfig, *, enabled: bool = True) -> EdgePolicy:
    """The public listener's limits: chat bodies up to the billing cap for as long as the model
    may take; receipts and the rest small and quick. Anyone may call; payment is checked inside."""
    return EdgePolicy(routes=(
        Route("/", max_body_bytes=SMALL_BODY_BYTES, deadline_s=PUBLIC_DEADLINE_S),
        Route("/v1/proxy/chat/completions", max_body_bytes=MAX_BODY_BYTES,
              deadline_s=config.upstream_timeout_s + EDGE_MARGIN_S),
        Route("/v1/proxy/receipt", max_body_bytes=SMALL_BODY_BYTES, deadline_s=PUBLIC_DEADLINE_S),
    ), enabled=enabled)


def admin_policy(access: LocalAccess) -> EdgePolicy:
    """The admin listener's limits: every route local (Host, Origin, install token)."""
    return EdgePolicy(routes=(Route("/", max_body_bytes=SMALL_BODY_BYTES, deadline_s=ADMIN_DEADLINE_S, local=True),),
                      access=access)


async def serve(broker: Broker, *, host: str, port: int, admin_port: int, token: str) -> None:
    """Run the public listener on ``host:port`` and the admin one on 127.0.0.1 only, both behind
    the guarded edge; admin calls must carry ``token``."""
    guarded = os.environ.get(BENCH_UNGUARDED_ENV) != "1"
    if not guarded:
        log.warning("%s=1: the public edge is OFF (no body, type or deadline limits); for benchmarks only",
                    BENCH_UNGUARDED_ENV)
    apps = BrokerApp(broker)
    public = hardened_server(apps.public, host=host, port=port, policy=public_policy(broker.config, enabled=guarded))
    access = LocalAccess.for_listener(token, "127.0.0.1", admin_port)
    admin = hardened_server(apps.admin, host="127.0.0.1", port=admin_port, policy=admin_policy(access))
    await asyncio.gather(public.serve(), admin.serve())
