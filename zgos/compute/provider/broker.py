"""The provider broker's logic: admit a signed request, bill and sign its answer.

Parts, wired by ``Broker``: the on-chain view of each user (``UserView``, cached for
``CHAIN_CACHE_S`` and refreshed once before any refusal), the durable ``RequestLog``, the
token counter (billing rule), the response signer, and the settlement side (``Settler``,
``settler.py``: receipts, the ledger watch, settlement rounds). HTTP lives in ``app.py``; this
module raises ``BrokerError`` (``wire.py``) with an HTTP status and a reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.compute.contracts import ComputeContracts
from zgos.compute.provider.books import UserBook, UserView
from zgos.compute.provider.executor import SealedExecutor
from zgos.compute.provider.settler import Settler
from zgos.compute.provider.store import NonceReplayed, RequestLog
from zgos.compute.provider.wire import (
    HEADER_MAX_FEE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_USER,
    BrokerError,
    BrokerStatus,
)
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import (
    AGENT_FIELD,
    AGENT_PROMPT_MAX_TOKENS,
    AdmissionRefused,
    ChatRequest,
    Exposure,
    InvalidChatRequest,
    Prices,
    Usage,
    compute_fee,
    compute_max_fee,
    compute_usage,
    count_output_tokens,
    parse_chat_request,
    validate_admission,
)
from zgos.compute.tokens import TokenCounter
from zgos.core.errors import ZgError
from zgos.runtime.edge import InvalidJson, validate_json_depth

log = logging.getLogger(__name__)

CHAIN_CACHE_S = 10.0  # a user's chain view older than this is refreshed in the background
CHAIN_MAX_STALE_S = 30.0  # ... and older than this is refreshed before admitting
DEFAULT_CREDIT_REQUESTS = 16  # default credit: this many worst-case requests per user
MAX_PROMPT_BYTES = 256 * 1024  # message text the broker tokenizes; a 2,048-token context holds far less
DISHONEST_MODES = ("overbill", "alter")


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check and holds a reservation."""

    request: v.Request
    request_hash: bytes
    chat: ChatRequest
    prompt_tokens: int
    reserved: int  # the worst-case fee held in ``inflight`` until the request ends
    upstream_body: bytes  # what the model server gets: the body, or an agent's run of it
    upstream_url: str | None = None  # the model server of an agent's adapter; None: the provider's own


@dataclass(frozen=True)
class BrokerConfig:
    upstream_url: str
    model_id: str
    model_path: Path
    chat_format: str
    db_path: Path
    model_hash: bytes
    credit: int | None = None  # neuron; None = DEFAULT_CREDIT_REQUESTS worst-case requests
    settle_interval_s: float = 60.0
    upstream_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    dishonest: str | None = None  # test-only: "overbill" or "alter"


class Broker:
    def __init__(self, config: BrokerConfig, contracts: ComputeContracts, provider: LocalAccount,
                 signer: LocalAccount, executor: SealedExecutor | None = None) -> None:
        if config.dishonest is not None and config.dishonest not in DISHONEST_MODES:
            raise ZgError(f"unknown dishonest mode {config.dishonest!r}")
        self.config = config
        self.contracts = contracts
        self.provider = provider
        self.signer = signer
        self.executor = executor
        self.address = v.normalize_address(provider.address)
        self.signer_address = v.normalize_address(signer.address)
        self.tokens = TokenCounter(config.model_path, config.chat_format)
        self.log = RequestLog(config.db_path)
        self.books: dict[str, UserBook] = {}
        self.views: dict[str, UserView] = {}
        self.prices = Prices(0, 0)
        self.prompts_tokenized = 0
        for user, totals in self.log.totals().items():
            self.books[user] = UserBook(totals.served, 0, totals.requests)
        for receipt, _ in self.log.receipts(self.address):
            self._book(receipt.user).receipted = receipt.total
        self.settler = Settler(contracts, provider, self.log, self.books, self.views)
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- registry ------------------------------------------------------------------------

    def load_service(self) -> None:
        """Read the on-chain service record; refuse to run if it does not match this broker."""
        service = self.contracts.service(self.address)
        if service.model != self.config.model_id:
            raise ZgError(f"registered model is {service.model!r}, broker serves {self.config.model_id!r}",
                          "run `zg compute provider update --model ...`")
        if service.model_hash != self.config.model_hash:
            raise ZgError("registered model hash differs from the model file's storage root (its model id)",
                          "run `zg compute provider update` with this model file")
        if v.normalize_address(service.signer) != self.signer_address:
            raise ZgError(f"registered signer is {service.signer}, broker signs as {self.signer.address}",
                          "run `zg compute provider update --signer ...`")
        self.prices = service.prices

    @property
    def credit(self) -> int:
        if self.config.credit is not None:
            return self.config.credit
        worst = compute_max_fee(self.tokens_limit_prompt, self.tokens_limit_output, self.prices)
        return DEFAULT_CREDIT_REQUESTS * max(worst, 1)

    tokens_limit_prompt = 2048  # the model server's context
    tokens_limit_output = 2048

    # --- admission -----------------------------------------------------------------------

    def _book(self, user: str) -> UserBook:
        book = self.books.get(user)
        if book is None:
            book = self.books[user] = UserBook()
        return book

    async def _view(self, user: str, *, fresh: bool = False) -> UserView:
        """The user's on-chain state. A view up to ``CHAIN_MAX_STALE_S`` old is used as is and
        refreshed in the background once older than ``CHAIN_CACHE_S``: balances only shrink
        through our own settlements or refunds that stay locked for the lock time, and every
        refusal is re-checked against a fresh view first."""
        view = self.views.get(user)
        age = None if view is None else time.monotonic() - view.fetched_at
        if view is None or fresh or (age is not None and age > CHAIN_MAX_STALE_S):
            view = await asyncio.to_thread(self._fetch_view, user)
            self.views[user] = view
        elif age is not None and age > CHAIN_CACHE_S and user not in self._refreshing:
            self._refreshing.add(user)
            task = asyncio.create_task(self._refresh(user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return view

    async def _refresh(self, user: str) -> None:
        try:
            self.views[user] = await asyncio.to_thread(self._fetch_view, user)
        except Exception as exc:  # the next request retries; admission never uses a failed view
            log.warning("refreshing %s failed: %s", user, exc)
        finally:
            self._refreshing.discard(user)

    def _fetch_view(self, user: str) -> UserView:
        return UserView(
            sub_account=self.contracts.sub_account(user, self.address),
            acknowledged_signer=v.normalize_address(self.contracts.acknowledged_signer(user, self.address)),
            settled=self.contracts.settled(user, self.address),
            fetched_at=time.monotonic(),
        )

    def verify_signed(self, body: bytes, headers: dict[str, str]) -> v.Request:
        """The signed request in the headers, checked against ``body``; raise ``BrokerError``
        (401 unsigned or forged, 400 malformed). Costs a keccak of the body and one ecrecover."""
        missing = [h for h in (HEADER_USER, HEADER_NONCE, HEADER_MAX_FEE, HEADER_SIGNATURE) if h not in headers]
        if missing:
            raise BrokerError(401, "unsigned", f"missing request signature headers: {', '.join(missing)}")
        try:
            user = v.normalize_address(headers[HEADER_USER])
            nonce = int(headers[HEADER_NONCE])
            max_fee = int(headers[HEADER_MAX_FEE])
            signature = v.decode_hex(headers[HEADER_SIGNATURE], v.SIGNATURE_BYTES)
            request = v.Request(user, self.address, nonce, v.compute_body_hash(body), max_fee)
            request.struct_hash()
        except (ValueError, v.InvalidMessage) as exc:
            raise BrokerError(400, "bad-headers", f"malformed request headers: {exc}") from None
        try:
            v.validate_signed_by(self.contracts.domain, request, signature, user)
        except v.InvalidSignature as exc:
            raise BrokerError(401, "bad-signature", f"request signature is not valid for {user}: {exc}") from None
        return request

    def parse_chat(self, body: bytes) -> ChatRequest:
        """The chat request in ``body``: JSON no deeper than the edge allows, the model served
        here, messages within ``MAX_PROMPT_BYTES``; raise ``BrokerError`` (400/404/413)."""
        try:
            validate_json_depth(body)
            chat = parse_chat_request(body)
        except (InvalidJson, InvalidChatRequest) as exc:
            raise BrokerError(400, "bad-request", str(exc)) from None
        if chat.model != self.config.model_id:
            raise BrokerError(404, "unknown-model",
                              f"model {chat.model!r} is not served here (this provider serves {self.config.model_id!r})")
        prompt_bytes = sum(len(m["content"].encode()) for m in chat.messages)
        if prompt_bytes > MAX_PROMPT_BYTES:
            raise BrokerError(413, "prompt-too-large",
                              f"messages hold {prompt_bytes} bytes of text; this provider takes at most {MAX_PROMPT_BYTES}")
        return chat

    async def admit(self, body: bytes, headers: dict[str, str]) -> Admitted:
        """Every check before forwarding, those that refuse strangers first: the signature; the
        acknowledged signer, the exposure at the *signed* max fee and the nonce (under the user's
        lock, holding that max fee); only then the body is parsed and the prompt tokenized, in a
        worker thread and within ``MAX_PROMPT_BYTES``. A request from an unfunded key costs a
        signature check and a chain read, never a tokenization. On success the request's worst
        case at this provider's prices is reserved (at most the signed max fee)."""
        request = self.verify_signed(body, headers)
        request_hash = v.compute_request_hash(self.contracts.domain, request)
        book = self._book(request.user)
        async with book.lock:
            await self._check_funds(request, book)
            try:  # a local SQLite commit without fsync: cheaper inline than a thread hop
                self.log.reserve("0x" + request_hash.hex(), request.user, request.nonce, request.max_fee)
            except NonceReplayed as exc:
                raise BrokerError(409, "replayed-nonce", str(exc)) from None
            book.inflight += request.max_fee
        try:
            chat = self.parse_chat(body)
            upstream_body, upstream_url = body, None
            if chat.agent is not None:
                chat, upstream_body, upstream_url = await self._run_agent(request.user, chat, body)
            self.prompts_tokenized += 1
            prompt_tokens = await asyncio.to_thread(self.tokens.count_prompt, chat.messages)
            needed = compute_max_fee(prompt_tokens, chat.max_tokens, self.prices)
            if request.max_fee < needed:
                raise BrokerError(402, "max-fee-too-low",
                                  f"signed max fee {request.max_fee} is below this request's worst case {needed} "
                                  f"({prompt_tokens} prompt tokens, max_tokens {chat.max_tokens})")
        except BaseException:
            self.log.fail("0x" + request_hash.hex())
            book.inflight -= request.max_fee
            raise
        book.inflight -= request.max_fee - needed
        return Admitted(request, request_hash, chat, prompt_tokens, needed, upstream_body, upstream_url)

    async def _run_agent(self, user: str, chat: ChatRequest, body: bytes) -> tuple[ChatRequest, bytes, str | None]:
        """The request as the agent runs it: its system prompt first (``executor``), within
        ``AGENT_PROMPT_MAX_TOKENS`` of what the user counts; the body the model server gets and
        the server (its adapter's, or None for the provider's own)."""
        if self.executor is None or chat.agent is None:
            raise BrokerError(404, "no-executor", "this provider runs no agents")
        run = await asyncio.to_thread(self.executor.run, chat.agent, user, chat.messages)
        messages = run.messages
        own, full = await asyncio.to_thread(lambda: (self.tokens.count_prompt(chat.messages),
                                                     self.tokens.count_prompt(messages)))
        if full - own > AGENT_PROMPT_MAX_TOKENS:
            raise BrokerError(413, "agent-too-large", f"agent {chat.agent}'s prompt is {full - own} tokens; "
                              f"an agent's prompt may add at most {AGENT_PROMPT_MAX_TOKENS}")
        data = json.loads(body)
        del data[AGENT_FIELD]
        data["messages"] = messages
        return dataclasses.replace(chat, messages=messages), json.dumps(data).encode(), run.upstream_url

    async def _check_funds(self, request: v.Request, book: UserBook) -> None:
        """Under the user's lock: the acknowledged signer, then the exposure at the signed max
        fee; either is refused only on a view read after this check began (raise
        ``BrokerError``: 403 unacknowledged, 402 balance, 429 credit)."""
        started = time.monotonic()
        view = await self._view(request.user)
        if view.acknowledged_signer != self.signer_address and view.fetched_at < started:
            view = await self._view(request.user, fresh=True)
        if view.acknowledged_signer != self.signer_address:
            raise BrokerError(403, "not-acknowledged",
                              f"{request.user} has not acknowledged this provider's signer {self.signer.address}")
        try:
            self._check_exposure(book, view, request.max_fee)
        except AdmissionRefused:
            if view.fetched_at < started:  # refuse only on a fresh view
                view = await self._view(request.user, fresh=True)
            try:
                self._check_exposure(book, view, request.max_fee)
            except AdmissionRefused as refused:
                status = 402 if refused.reason == "balance" else 429
                raise BrokerError(status, f"insufficient-{refused.reason}", str(refused)) from None

    def _check_exposure(self, book: UserBook, view: UserView, max_fee: int) -> None:
        exposure = Exposure(
            spendable=view.sub_account.spendable, settled=view.settled, served=book.served,
            receipted=book.receipted, inflight=book.inflight,
        )
        validate_admission(exposure, max_fee, self.credit)

    # --- billing and signing -------------------------------------------------------------

    def usage_of(self, admitted: Admitted, output: Sequence[str]) -> Usage:
        """Billed usage of an answer whose generated pieces are ``output`` (``sse``)."""
        completion = count_output_tokens(output, self.tokens.count_completion)
        return compute_usage(admitted.prompt_tokens, completion, admitted.chat.max_tokens)

    async def finish(self, admitted: Admitted, usage: Usage, response_hash: bytes) -> str:
        """Bill and sign an answer, complete or cut short (``usage`` counts what was forwarded);
        durable before it returns. Returns the signed JSON."""
        fee = compute_fee(usage, self.prices)
        if self.config.dishonest == "overbill":
            usage = Usage(usage.input_tokens, usage.output_tokens + 7)
            fee = compute_fee(usage, self.prices)
        response = v.Response(
            request_hash=admitted.request_hash, response_hash=response_hash, model_id=self.config.model_id,
            model_hash=self.config.model_hash, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, fee=fee,
        )
        signed = v.encode_response(response, v.sign_message(bytes(self.signer.key), self.contracts.domain, response))
        self.log.complete("0x" + admitted.request_hash.hex(), usage.input_tokens, usage.output_tokens, fee, signed)
        book = self._book(admitted.request.user)
        book.inflight -= admitted.reserved
        book.served += fee
        book.requests += 1
        return signed

    async def abandon(self, admitted: Admitted) -> None:
        """The model server failed before producing anything: release the reservation, bill
        nothing."""
        self.log.fail("0x" + admitted.request_hash.hex())
        self._book(admitted.request.user).inflight -= admitted.reserved

    def status(self) -> BrokerStatus:
        books = dict(self.books)  # runs in a worker thread while requests add users
        served = sum(b.served for b in books.values())
        settled = sum(self.contracts.settled(user, self.address) for user in books)
        return BrokerStatus(
            provider=self.address, signer=self.signer_address, model=self.config.model_id,
            requests=sum(b.requests for b in books.values()), served=served,
            receipted=sum(b.receipted for b in books.values()), settled=settled,
            unsettled=max(0, served - settled), balance=self.contracts.available(self.address),
            users=len(books), prompts_tokenized=self.prompts_tokenized,
            last_settlement=self.settler.last_settlement, pid=os.getpid(),
        )
