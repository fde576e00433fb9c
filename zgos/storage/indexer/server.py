"""HTTP front of the indexer: ``indexer_*`` JSON-RPC on ``POST /`` and the REST gateway.

REST (0G's gateway paths, storage.md §5.2):
* ``GET /file?root=0x..[&name=NAME]``: the file's bytes from the storage nodes, streamed as
  each segment's proof against ROOT checks out (``Content-Length`` exact; the first segment is
  proven before the status line, so an unservable file is still a 4xx/5xx; a failure later
  closes the connection short of ``Content-Length``, never sends an unproven byte).
* ``GET /file/info/{root}``: ``{root, tx, finalized, locations, pending}``.
* ``GET /node/status``: the usable nodes, the skipped ones with their reasons, scores and time to
  their next probe, and the snapshot's age (``ageSecs``).
Bad input is a 4xx with ``{"error": message}``; an unknown file is 404; nodes that cannot
serve a verified copy give 502 with the reason. JSON-RPC errors are JSON-RPC error objects.

The app runs behind the guarded edge on a hardened uvicorn server with the limits of
``IndexerLimits`` (README, "Limits at the edge"); its blocking work (asking the nodes,
fetching and proving segments) runs in a bounded pool of worker threads.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from zgos.core.errors import ZgError
from zgos.runtime.edge import EdgePolicy, Route, plain_error_body
from zgos.runtime.jsonrpc import (
    MAX_BATCH_CALLS,
    MAX_RESPONSE_BYTES,
    JsonRpcServer,
    json_error,
    jsonrpc_app,
    rate_refusal,
    run_in_worker,
)
from zgos.runtime.ratelimit import ClientRateLimiter, RateLimit
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.runtime.zerocopy import THREAD_SEND
from zgos.storage.indexer.models import BadRequest, NodeStatusResult, parse_root
from zgos.storage.indexer.rpc import FAN_OUT_METHODS, indexer_methods
from zgos.storage.indexer.service import Indexer, NotEnoughNodes, NotFound

log = logging.getLogger(__name__)

MAX_RPC_BODY_BYTES = 1024 * 1024
RPC_DEADLINE_S = 60.0
FILE_DEADLINE_S = 900.0  # a whole file through the gateway: 1 GiB at ~1.2 MB/s
MAX_INFLIGHT = 64
WORKER_THREADS = 16  # JSON-RPC, file lookups and each download's first proven segment
FILE_SENDERS = 8  # downloads sending at once, each from a thread of its own (not the workers')
FILE_DOWNLOADS_PER_CLIENT = 2  # at once from one client address, so one client cannot hold every sender
SEND_STALL_S = 60.0  # a client that reads nothing for this long is dropped
# Requests that ask every storage node (file lookups) or stream a file, per second per client
# address, and at once; far above what the devnet and the suite send.
RATE_FAN_OUTS_PER_S = 100.0
RATE_BURST_FAN_OUTS = 200.0


@dataclass(frozen=True)
class IndexerLimits:
    """What the indexer accepts (README, "Limits at the edge")."""

    max_rpc_body_bytes: int = MAX_RPC_BODY_BYTES
    max_batch_calls: int = MAX_BATCH_CALLS
    max_response_bytes: int = MAX_RESPONSE_BYTES
    rpc_deadline_s: float = RPC_DEADLINE_S
    file_deadline_s: float = FILE_DEADLINE_S
    max_inflight: int = MAX_INFLIGHT
    worker_threads: int = WORKER_THREADS
    file_senders: int = FILE_SENDERS
    file_downloads_per_client: int = FILE_DOWNLOADS_PER_CLIENT
    rate: RateLimit = field(default_factory=lambda: RateLimit(RATE_FAN_OUTS_PER_S, RATE_BURST_FAN_OUTS))

    def policy(self) -> EdgePolicy:
        return EdgePolicy(
            routes=(Route("/", max_body_bytes=self.max_rpc_body_bytes, deadline_s=self.rpc_deadline_s),
                    Route("/file", max_body_bytes=0, deadline_s=self.file_deadline_s)),
            max_inflight=self.max_inflight, error_body=plain_error_body,
        )


class ProvenFileResponse(Response):
    """``GET /file``'s answer once its first chunk is proven: that chunk, then the rest written
    to the socket by a worker thread as each chunk is proven (the hardened server's
    ``THREAD_SEND``: no hop through the event loop, no joining), one of the ``senders``, so slow
    readers can hold up other downloads but never the JSON-RPC's ``workers``. A failure after
    the headers leaves the response short of its ``Content-Length`` and the connection closed:
    the client sees a broken transfer, never an unproven byte. A client that leaves, or reads
    nothing for ``SEND_STALL_S``, stops the fetching; so does the file deadline."""

    def __init__(self, first: bytes, chunks: Generator[bytes, None, None], size: int, headers: dict[str, str],
                 app: IndexerApp, cleanup: Callable[[], None]) -> None:
        super().__init__(status_code=200, headers={**headers, "content-length": str(size)},
                         media_type="application/octet-stream")
        self.first = first
        self.chunks = chunks
        self.size = size
        self.app = app
        self.cleanup = cleanup
        self.finished: Callable[[], None] = lambda: None  # on the event loop, once the answer is over

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest = self.size - len(self.first)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.first, "more_body": rest > 0})
            if rest > 0:
                await send({"type": THREAD_SEND, "count": rest, "chunks": self.chunks, "limiter": self.app.senders,
                            "stall_s": SEND_STALL_S, "deadline_s": self.app.file_deadline_s})
        finally:
            self.finished()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.cleanup, limiter=self.app.workers)


class IndexerApp:
    """The Starlette app of the indexer: JSON-RPC and the gateway routes, one worker pool."""

    def __init__(self, indexer: Indexer, scratch: Path, limits: IndexerLimits) -> None:
        self.indexer = indexer
        self.scratch = scratch
        self.workers = anyio.CapacityLimiter(limits.worker_threads)
        self.senders = anyio.CapacityLimiter(limits.file_senders)
        self.file_deadline_s = limits.file_deadline_s
        self.per_client = limits.file_downloads_per_client
        self.downloading: Counter[str] = Counter()  # client address -> its downloads in progress (event loop only)
        self.rate = ClientRateLimiter(limits.rate) if limits.rate.enabled else None
        self.rpc = JsonRpcServer(indexer_methods(indexer), max_batch_calls=limits.max_batch_calls,
                                 max_response_bytes=limits.max_response_bytes, rate=self.rate,
                                 cost=lambda call: 1.0 if call.method in FAN_OUT_METHODS else 0.0)
        self.app = jsonrpc_app(self.rpc, self.workers, [
            StarletteRoute("/file", self.get_file, methods=["GET"]),
            StarletteRoute("/file/info/{root}", self.get_file_info, methods=["GET"]),
            StarletteRoute("/node/status", self.node_status, methods=["GET"]),
        ])

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker (abandoned, not awaited, past the edge's deadline)."""
        return await run_in_worker(self.workers, fn, *args)

    async def _rest(self, fn: Callable[..., Any], *args: Any) -> Response:
        """A REST answer: the value of ``fn`` as JSON, its ``ZgError`` as a 4xx/5xx."""
        try:
            return JSONResponse(await self._run(fn, *args))
        except ZgError as exc:
            return _rest_error(exc)

    async def get_file_info(self, request: Request) -> Response:
        if (refusal := rate_refusal(self.rate, request, 1, "file requests")) is not None:
            return refusal
        return await self._rest(lambda: self.indexer.file_info(parse_root(request.path_params["root"])).to_json())

    async def node_status(self, request: Request) -> Response:
        return await self._rest(lambda: NodeStatusResult.of(self.indexer.directory.current(), time.time()).to_json())

    async def get_file(self, request: Request) -> Response:
        if (refusal := rate_refusal(self.rate, request, 1, "file requests")) is not None:
            return refusal
        if not self.senders.available_tokens:  # checked before any node is asked; the limiter still bounds them
            return json_error(503, f"the gateway is sending as many files as it may at once "
                                   f"({self.senders.total_tokens:g}); try again shortly")
        client = request.client.host if request.client else ""
        if self.downloading[client] >= self.per_client:
            return json_error(429, f"at most {self.per_client} downloads at once from one address; "
                                   f"wait for one to finish")
        self.downloading[client] += 1
        try:
            response = await self._file_response(request)
        except BaseException:  # cancelled (the edge's deadline): no answer will release it
            self._finished(client)
            raise
        if isinstance(response, ProvenFileResponse):
            response.finished = lambda: self._finished(client)
        else:
            self._finished(client)
        return response

    def _finished(self, client: str) -> None:
        self.downloading[client] -= 1
        if not self.downloading[client]:
            del self.downloading[client]

    async def _file_response(self, request: Request) -> Response:
        roots = request.query_params.getlist("root")
        try:
            if len(roots) != 1:
                raise BadRequest("give exactly one root: GET /file?root=0x...")
            root = parse_root(roots[0])
            name = request.query_params.get("name", "0x" + root.hex())
            # awaited even past the deadline: the response it makes owns a scratch dir and fetches
            return await anyio.to_thread.run_sync(self._open_file, root, name, limiter=self.workers)
        except ZgError as exc:
            return _rest_error(exc)

    def _open_file(self, root: bytes, name: str) -> Response:
        """Find the file and prove its first chunk (worker thread); the response streams the rest."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(dir=self.scratch)
        chunks: Generator[bytes, None, None] | None = None

        def cleanup() -> None:
            if chunks is not None:
                chunks.close()  # stops the fetches still in flight
            scratch.cleanup()

        try:
            size, chunks = self.indexer.read(root, Path(scratch.name))
            first = next(chunks, b"")
        except BaseException:
            cleanup()
            raise
        headers = {"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}",
                   "x-zg-root": "0x" + root.hex()}
        return ProvenFileResponse(first, chunks, size, headers, self, cleanup)


def _rest_error(exc: ZgError) -> Response:
    if isinstance(exc, BadRequest):
        return json_error(400, exc.message)
    if isinstance(exc, NotFound):
        return json_error(404, exc.message)
    if isinstance(exc, NotEnoughNodes):
        return json_error(503, exc.message)
    return json_error(502, exc.message)


class IndexerServer(EdgeServer):
    """The indexer's HTTP front on a hardened uvicorn server bound to ``host:port``."""

    def __init__(self, host: str, port: int, indexer: Indexer, scratch: Path,
                 limits: IndexerLimits | None = None) -> None:
        self.limits = limits or IndexerLimits()
        self.front = IndexerApp(indexer, scratch, self.limits)
        super().__init__(self.front.app, bind_listener(host, port), self.limits.policy())
