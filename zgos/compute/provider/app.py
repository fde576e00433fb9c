"""The broker's HTTP surface (FastAPI on uvicorn; ``upstream`` is its model server client).

Public (``/v1/proxy``, compute.md §7): ``POST /chat/completions`` (stream and non-stream,
paid), ``GET /models``, ``GET /signature/{id}``, ``GET /attestation``, ``POST /receipt``,
and ``GET /health``. Admin, on a separate listener (127.0.0.1 unless ``--admin-host``):
``GET /v1/status``, ``GET /v1/user/{address}``, ``POST /v1/settle``. Errors are JSON ``{"error": {"message", "type", "code"}}`` with a 4xx
(bad request, unpaid, refused) or 502/504 (model server down/slow; nothing billed).

Both listeners run behind the guarded edge (``zgos.runtime.edge``, limits in ``public_policy``
and ``admin_policy``): JSON bodies only, chat bodies up to ``billing.MAX_BODY_BYTES``, receipts
and everything else up to ``SMALL_BODY_BYTES``, total deadlines per route; the admin routes
answer only calls addressed to the admin listener's address that carry the install token. The benchmark measures
what the public edge costs by starting a broker with ``ZGOS_BENCH_UNGUARDED=1`` in its
environment (``BENCH_UNGUARDED_ENV``); nothing else sets it, and the broker says so loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator

import sha3
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from zgos.compute.contracts import ComputeContracts
from zgos.compute.pool import Answer, Pool, PoolError, PoolTimeout
from zgos.compute.provider.broker import Admitted, Broker, BrokerConfig
from zgos.compute.provider.executor import SealedExecutor
from zgos.compute.provider.wire import (
    HEADER_RESPONSE,
    HEADER_RESPONSE_ID,
    Attestation,
    BadBody,
    BrokerError,
    BrokerStatus,
    ErrorBody,
    ExecutorInfo,
    Health,
    KeyProof,
    ModelList,
    ProviderModelCard,
    ReceiptAccepted,
    SettlementRound,
    SignedReceipt,
    UserBookView,
    decode_body,
)
from zgos.compute.relay import Ended, RelayResponse, Write
from zgos.compute.spec import sse
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import MAX_BODY_BYTES
from zgos.core.errors import ZgError
from zgos.core.hashing import keccak256
from zgos.runtime.access import LocalAccess
from zgos.runtime.edge import EdgePolicy, Route
from zgos.runtime.serve import hardened_server

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
    "by the registered signer over the request hash, the response bytes, the model name and "
    "id (its file's storage root), token usage and fee; and the chain pays only amounts the user signed receipts for."
)
COMPLETIONS_PATH = "/v1/chat/completions"
UPSTREAM_HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}
_CONTENT = re.compile(rb'"content":\s*"')


def error_response(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorBody.of(status, reason, message).model_dump(), status_code=status)


def _alter(data: bytes) -> bytes:
    """Dishonest test mode: change the answer's text after it was hashed and signed."""
    return _CONTENT.sub(lambda m: m.group(0) + b"ALTERED ", data, count=1)


class BrokerApp:
    """The public and admin FastAPI apps of one broker, sharing one upstream client."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        config = broker.config
        self.upstream = Pool(timeout_s=config.upstream_timeout_s, connect_timeout_s=config.connect_timeout_s)
        self.upstream_url = config.upstream_url.rstrip("/") + COMPLETIONS_PATH
        self.public = FastAPI(title="zgos provider broker", lifespan=self._lifespan)
        self.admin = FastAPI(title="zgos provider broker admin")
        for app in (self.public, self.admin):
            app.add_exception_handler(BrokerError, self._on_broker_error)  # type: ignore[arg-type]
        self._routes()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        try:
            await self.broker.settler.on_settlement_thread(self.broker.settler.start)
            await self.broker.settler.settle_due(everything=True)
        except ZgError as exc:
            log.warning("settlement at start failed: %s", exc)
        task = asyncio.create_task(self._settle_loop())
        yield
        task.cancel()
        await self.upstream.close()
        if self.broker.executor is not None:
            await asyncio.to_thread(self.broker.executor.close)

    async def _settle_loop(self) -> None:
        """Every ``REFUND_WATCH_S``: one ``eth_getLogs`` for refunds (settle those users now);
        every ``settle_interval_s``: settle every due receipt."""
        interval = self.broker.config.settle_interval_s
        last_full = last_reload = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(min(REFUND_WATCH_S, interval))
            now = asyncio.get_running_loop().time()
            full = now - last_full >= interval
            try:
                if now - last_reload >= SERVICE_RELOAD_S:
                    last_reload = now
                    await self.broker.settler.on_settlement_thread(self.broker.load_service)  # prices may have changed
                refunds = await self.broker.settler.on_settlement_thread(self.broker.settler.watch_ledger)
                if full or refunds:
                    await self.broker.settler.settle_due(everything=full)
            except Exception as exc:  # keep settling on schedule whatever one round hit
                log.warning("settlement failed: %s", exc)
            if full:
                last_full = now

    async def _on_broker_error(self, request: Request, exc: BrokerError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.message)

    def _routes(self) -> None:
        """Each route parses its input into a model (``wire``) once and calls the broker."""
        public, admin = self.public, self.admin
        public.get("/health")(self.health)
        public.get("/v1/proxy/models")(self.models)
        public.get("/v1/proxy/attestation")(self.attestation)
        public.get("/v1/proxy/signature/{response_id}")(self.signature)
        public.post("/v1/proxy/receipt")(self.receipt)
        public.post("/v1/proxy/chat/completions")(self.chat)
        public.get("/v1/agents/executor")(self.executor)
        admin.get("/v1/status")(self.status)
        admin.get("/v1/user/{address}")(self.user)
        admin.post("/v1/settle")(self.settle)

    # --- public routes -------------------------------------------------------------------

    async def health(self) -> Health:
        return Health(provider=self.broker.address, model=self.broker.config.model_id)

    async def executor(self) -> ExecutorInfo:
        """The key agent owners seal their agents' keys to (``zg inft authorize --executor``)."""
        if self.broker.executor is None:
            raise BrokerError(404, "no-executor", "this provider runs no agents")
        return ExecutorInfo(address=self.broker.executor.account.address, pubkey="0x" + self.broker.executor.pubkey.hex())

    async def models(self) -> ModelList:
        config = self.broker.config
        return ModelList(data=[ProviderModelCard(id=config.model_id, owned_by=self.broker.address,
                                                 model_hash="0x" + config.model_hash.hex())])

    async def attestation(self, nonce: str = "") -> Attestation:
        """The signer's proof of key possession over ``nonce``, and what is (not) attested."""
        broker = self.broker
        challenge = f"zgos provider {broker.address} signer {broker.signer_address} nonce {nonce}"
        digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(challenge)).encode() + challenge.encode())
        signature = "0x" + v.sign_digest(bytes(broker.signer.key), digest).hex()
        return Attestation(provider=broker.address, signer=broker.signer_address, note=ATTESTATION_NOTE,
                           model_id=broker.config.model_id, model_hash="0x" + broker.config.model_hash.hex(),
                           key_proof=KeyProof(message=challenge, signature=signature))

    async def signature(self, response_id: str) -> Response:
        signed = await asyncio.to_thread(self.broker.log.signed_response, response_id.lower())
        if signed is None:
            return error_response(404, "unknown-response", f"no signed response with id {response_id}")
        return Response(signed, media_type="application/json")

    async def receipt(self, request: Request) -> ReceiptAccepted:
        try:
            receipt = decode_body(SignedReceipt, await request.body())
        except BadBody as exc:
            raise BrokerError(400, "bad-receipt", f"receipt must be {{user, total, signature}}: {exc}") from None
        receipted = await self.broker.settler.accept_receipt(receipt.user, receipt.total, receipt.signature)
        return ReceiptAccepted(user=receipt.user, receipted=receipted)

    async def chat(self, request: Request) -> Response:
        """The body stays bytes: it is what the user signed (``Broker.admit`` checks and parses it)."""
        body = await request.body()
        headers = {k.lower(): val for k, val in request.headers.items()}
        admitted = await self.broker.admit(body, headers)
        return await self._forward(admitted)

    # --- admin routes --------------------------------------------------------------------

    async def status(self) -> BrokerStatus:
        return await asyncio.to_thread(self.broker.status)

    async def user(self, address: str) -> UserBookView:
        book = self.broker.books.get(address.lower())
        if book is None:
            raise BrokerError(404, "unknown-user", f"no requests from {address}")
        return UserBookView(user=address.lower(), served=book.served, receipted=book.receipted,
                            inflight=book.inflight, requests=book.requests)

    async def settle(self) -> SettlementRound:
        return await self.broker.settler.settle_due(everything=True)

    # --- relaying the model's answer -----------------------------------------------------

    async def _open_upstream(self, admitted: Admitted) -> Answer:
        """Send the request upstream and wait for its status and headers. A failure releases
        the reservation and raises 502/504: the model never answered, nothing is billed."""
        try:
            url = self.upstream_url if admitted.upstream_url is None else admitted.upstream_url + COMPLETIONS_PATH
            answer = await self.upstream.post(url, admitted.upstream_body, UPSTREAM_HEADERS)
        except PoolError as exc:
            await self.broker.abandon(admitted)
            raise _upstream_failure(exc, self.broker.config.upstream_timeout_s) from None
        if answer.status != 200:
            try:
                detail = (await answer.read())[:300].decode(errors="replace")
            except PoolError:
                detail = ""
            answer.close()
            await self.broker.abandon(admitted)
            status = 400 if 400 <= answer.status < 500 else 502
            raise BrokerError(status, "upstream-error",
                              f"the model server answered HTTP {answer.status}: {detail}; nothing was charged")
        return answer

    async def _forward(self, admitted: Admitted) -> Response:
        answer = await self._open_upstream(admitted)
        response_id = "0x" + admitted.request_hash.hex()
        if admitted.chat.stream:
            return self._stream(admitted, answer, response_id)
        try:
            data = await answer.read()
        except PoolError as exc:  # a plain answer is delivered whole or not at all
            answer.close()
            await self.broker.abandon(admitted)
            raise _upstream_failure(exc, self.broker.config.upstream_timeout_s) from None
        usage = self.broker.usage_of(admitted, sse.body_output(data))
        signed = await self.broker.finish(admitted, usage, v.compute_body_hash(data))
        if self.broker.config.dishonest == "alter":
            data = _alter(data)
        return Response(data, media_type="application/json",
                        headers={HEADER_RESPONSE: signed, HEADER_RESPONSE_ID: response_id})

    def _stream(self, admitted: Admitted, answer: Answer, response_id: str) -> RelayResponse:
        """Relay the model's stream as it comes and bill what was forwarded, however it ends.

        - It ends (``[DONE]``): bill the whole answer, append the signature event.
        - The model server breaks off or goes silent for the timeout: close it, bill the
          prompt and every output token forwarded, sign that and append the signature event,
          so the client holds a signed partial answer (nothing is billed if no output token
          was forwarded: the provider failed before serving anything).
        - The client leaves: close the model server's connection at once (it stops
          generating) and bill the prompt and every output token forwarded; the signed
          response is at ``GET /v1/proxy/signature/{id}``.

        The signature covers exactly the bytes forwarded before it (a partial event at a cut
        is closed with a blank line first, so the signature event stays parseable)."""
        forwarded = _Forwarded()
        alter = self.broker.config.dishonest == "alter"

        async def pump(write: Write) -> None:
            async for chunk in answer.chunks():
                forwarded.feed(chunk)
                await write(_alter(chunk) if alter else chunk)

        async def finish(ended: Ended, write: Write) -> None:
            await self._finish_stream(admitted, answer, forwarded, response_id, ended, write)

        return RelayResponse(pump, finish, headers={HEADER_RESPONSE_ID: response_id, "cache-control": "no-cache"})

    async def _finish_stream(self, admitted: Admitted, answer: Answer, forwarded: _Forwarded, response_id: str,
                             ended: Ended, write: Write) -> None:
        """Bill and sign what was forwarded and append the signature event, or, when the model
        server broke off before any output token, release the reservation and say so."""
        answer.close()
        if ended.error is not None and not isinstance(ended.error, PoolError):
            log.error("relaying %s failed: %r", response_id, ended.error)
        output = sse.stream_output(forwarded.events)
        if ended.error is not None and not output:
            await self.broker.abandon(admitted)
            error = ErrorBody.of(502, "upstream-error", f"the model server broke off before answering "
                                                        f"({ended.error}); nothing was charged")
            await write(sse.format_event(json.dumps(error.model_dump()).encode()))  # as before: json's spacing
            return
        if forwarded.splitter.pending:
            forwarded.feed(sse.EVENT_SEPARATOR)
            await write(sse.EVENT_SEPARATOR)
        usage = self.broker.usage_of(admitted, output)
        signed = await self.broker.finish(admitted, usage, forwarded.hasher.digest())
        await write(sse.format_signature_event(signed))


class _Forwarded:
    """The bytes of a stream forwarded so far: their keccak256 and their complete events."""

    def __init__(self) -> None:
        self.hasher = sha3.keccak_256()
        self.splitter = sse.EventSplitter()
        self.events: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.events += self.splitter.feed(chunk)


def _upstream_failure(exc: PoolError, timeout_s: float) -> BrokerError:
    if isinstance(exc, PoolTimeout):
        return BrokerError(504, "upstream-timeout",
                           f"the model server did not answer within {timeout_s:g}s; nothing was charged")
    return BrokerError(502, "upstream-unreachable",
                       f"the model server is unreachable or broke off ({exc}); nothing was charged")


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


def build_broker(config: BrokerConfig, contracts: ComputeContracts, provider: LocalAccount,
                 signer: LocalAccount, executor: SealedExecutor | None = None) -> Broker:
    """The broker for ``config``, checked against its on-chain service record (a ``ZgError``
    says what to fix when the record names another model, hash or signer)."""
    broker = Broker(config, contracts, provider, signer, executor)
    broker.load_service()
    return broker


async def serve(broker: Broker, *, host: str, port: int, admin_port: int, token: str,
                admin_host: str = "127.0.0.1") -> None:
    """Run the public listener on ``host:port`` and the admin one on ``admin_host:admin_port``
    (loopback unless the operator administers from another host), both behind the guarded edge;
    admin calls must carry ``token`` and name the admin listener's address."""
    guarded = os.environ.get(BENCH_UNGUARDED_ENV) != "1"
    if not guarded:
        log.warning("%s=1: the public edge is OFF (no body, type or deadline limits); for benchmarks only",
                    BENCH_UNGUARDED_ENV)
    apps = BrokerApp(broker)
    public = hardened_server(apps.public, host=host, port=port, policy=public_policy(broker.config, enabled=guarded))
    access = LocalAccess.for_listener(token, admin_host, admin_port)
    admin = hardened_server(apps.admin, host=admin_host, port=admin_port, policy=admin_policy(access))
    await asyncio.gather(public.serve(), admin.serve())
