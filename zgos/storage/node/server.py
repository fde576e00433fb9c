"""HTTP front of a storage node: JSON-RPC on ``POST /`` and a raw-bytes fast path.

Fast path (for zgos's own client; same validation as the RPC, no base64, no JSON body):
* ``PUT /zgos/v1/segment/{txSeq}/{index}``: body = segment bytes (``application/octet-stream``);
  headers ``X-Zg-Root``, ``X-Zg-File-Size``, ``X-Zg-Proof`` (the proof as JSON). 200
  ``{"stored": bool}``; a rejected segment is 400 ``{"error": reason}``; an unknown file 404.
* ``GET /zgos/v1/segment/{txSeq}/{index}``: body = segment bytes; ``X-Zg-Proof`` header.
* ``PUT /zgos/v1/segments/{txSeq}``: body = frames (``zgos.storage.spec.frames``) of at most
  ``MAX_FRAMES_PER_REQUEST`` segments, headers ``X-Zg-Root`` and ``X-Zg-File-Size``; each is
  checked and stored as it arrives. 200 ``{"stored": n, "held": n}``; at the first refused
  segment 400 ``{"error": reason, "index": i}`` (those before it are stored).
* ``GET /zgos/v1/segments/{txSeq}?first=I&count=N&step=K``: segments I, I+K, .. (N of them, at
  most ``MAX_FRAMES_PER_REQUEST``) as frames (``zgos.storage.spec.frames``) with an exact
  ``Content-Length``, the segments' bytes sent from their files by ``sendfile``
  (``zgos.storage.node.framesend``); a segment not held here is an empty frame.
* ``GET /zgos/v1/file/{txSeq}``: ``{"segments": [held indexes], "finalized": bool}`` (resume).
* ``GET /zgos/v1/holdings?root=R1&root=R2..``: up to ``MAX_HOLDINGS_ROOTS`` data roots;
  ``{"shard": zgs_getShardConfig, "files": [{"info": zgs_getFileInfo, "segments": [held
  indexes]} or null per root]}``: what a health check asks a node, in one request.
* ``GET /`` and ``GET /health``: the node's ``zgs_getStatus``.

The app runs behind the guarded edge (``zgos.runtime.edge``) on a hardened uvicorn server, with
the limits of ``NodeLimits`` (README, "Limits at the edge"). Every error is a 4xx (or 503 when
overloaded) with ``{"error": message}``, never a traceback. SQLite I/O and hashing run in a
bounded pool of worker threads, never in the event loop and never in unbounded threads.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.edge import EdgePolicy, InvalidJson, Route, parse_json, plain_error_body
from zgos.runtime.jsonrpc import (
    MAX_BATCH_CALLS,
    MAX_INT64,
    MAX_RESPONSE_BYTES,
    json_error,
    jsonrpc_app,
    rate_refusal,
    run_in_worker,
)
from zgos.runtime.ratelimit import ClientRateLimiter, RateLimit
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.storage.node.errors import AlreadyFinalized, DataUnavailable, FileNotFound
from zgos.storage.node.framesend import OutgoingFrames, outgoing_frames
from zgos.storage.node.node import StorageNode
from zgos.storage.node.rpc import NodeRpc, node_rpc_server
from zgos.storage.spec.frames import (
    FRAME_HEADER,
    MAX_FRAMES_BODY_BYTES,
    MAX_FRAMES_PER_REQUEST,
    InvalidFrame,
    compute_frame_indexes,
    decode_frame_header,
    decode_proof,
)
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, InvalidProof, Proof, parse_hash
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof

log = logging.getLogger(__name__)

MAX_RPC_BODY_BYTES = 16 * 1024 * 1024  # 0G's SDKs upload 10 segments (~3.5 MB of JSON) per call
RPC_DEADLINE_S = 60.0
SEGMENT_DEADLINE_S = 60.0
MAX_INFLIGHT = 64
WORKER_THREADS = 8
# Segments of work per second per client address, and at once: above what one client can pull
# from one node (a verified download runs at about 600 MB/s, 2,300 segments/s, on 2 cores), low
# enough that one client cannot take a big node for itself. ``--rate-limit`` changes it.
RATE_SEGMENTS_PER_S = 4000.0
RATE_BURST_SEGMENTS = 8000.0
SEGMENT_PREFIX = "/zgos/v1/segment/"
SEGMENTS_PREFIX = "/zgos/v1/segments/"
SEGMENT_PATH = re.compile(r"^/zgos/v1/segment/(\d+)/(\d+)$")
SEGMENTS_PATH = re.compile(r"^/zgos/v1/segments/(\d+)$")
FILE_PATH = re.compile(r"^/zgos/v1/file/(\d+)$")
MAX_HOLDINGS_ROOTS = 8  # files one holdings request may ask about (a health check asks two)
OCTET_STREAM = frozenset({"application/octet-stream"})
# Bench-only: set to 1, ``zg storage node`` serves without the edge's guards and rate limits,
# so ``bench/`` can measure what they cost. Nothing else may set it.
BENCH_UNGUARDED_ENV = "ZGOS_BENCH_UNGUARDED"


@dataclass(frozen=True)
class NodeLimits:
    """What one storage node accepts (README, "Limits at the edge")."""

    max_rpc_body_bytes: int = MAX_RPC_BODY_BYTES
    max_batch_calls: int = MAX_BATCH_CALLS
    max_response_bytes: int = MAX_RESPONSE_BYTES
    rpc_deadline_s: float = RPC_DEADLINE_S
    segment_deadline_s: float = SEGMENT_DEADLINE_S
    max_inflight: int = MAX_INFLIGHT
    worker_threads: int = WORKER_THREADS
    rate: RateLimit = field(default_factory=lambda: RateLimit(RATE_SEGMENTS_PER_S, RATE_BURST_SEGMENTS))
    guarded: bool = True  # False only in benchmarks (BENCH_UNGUARDED_ENV)

    @classmethod
    def from_env(cls, rate: RateLimit | None = None) -> NodeLimits:
        """The defaults (with ``rate`` if given), unguarded only under the bench's switch."""
        if os.environ.get(BENCH_UNGUARDED_ENV) == "1":
            log.warning("%s=1: serving WITHOUT the edge's guards (benchmarks only)", BENCH_UNGUARDED_ENV)
            return cls(rate=RateLimit(0, 0), guarded=False)
        return cls() if rate is None else cls(rate=rate)

    def policy(self, access: LocalAccess | None) -> EdgePolicy:
        return EdgePolicy(
            routes=(Route("/", max_body_bytes=self.max_rpc_body_bytes, deadline_s=self.rpc_deadline_s),
                    Route(SEGMENT_PREFIX, max_body_bytes=BYTES_PER_SEGMENT, content_types=OCTET_STREAM,
                          deadline_s=self.segment_deadline_s),
                    Route(SEGMENTS_PREFIX, max_body_bytes=MAX_FRAMES_BODY_BYTES, content_types=OCTET_STREAM,
                          deadline_s=self.segment_deadline_s, stream_body=True)),
            max_inflight=self.max_inflight, access=access, error_body=plain_error_body, enabled=self.guarded,
        )


def _number(text: str, name: str) -> int:
    """A path number; ``InvalidSegment`` past SQLite's range (never an overflow deeper in)."""
    value = int(text) if len(text) <= len(str(MAX_INT64)) else MAX_INT64 + 1
    if value > MAX_INT64:
        raise InvalidSegment(f"{name} {text[:24]} is out of range (0..{MAX_INT64})")
    return value


def _query_number(request: Request, name: str, default: int | None = None) -> int:
    """Query parameter ``name`` as a number (``default`` when absent); ``InvalidSegment`` otherwise."""
    text = request.query_params.get(name)
    if text is None and default is not None:
        return default
    if text is None or not text.isdigit():
        raise InvalidSegment(f"query parameter {name} must be a non-negative number")
    return _number(text, name)


def _file_headers(request: Request) -> tuple[bytes, int]:
    """The data root and byte size an upload names (``X-Zg-Root``, ``X-Zg-File-Size``)."""
    root = parse_hash(request.headers.get("x-zg-root"), "X-Zg-Root")
    size_text = request.headers.get("x-zg-file-size", "")
    if not size_text.isdigit() or len(size_text) > len(str(MAX_INT64)):
        raise InvalidSegment("X-Zg-File-Size must be a non-negative integer")
    return root, int(size_text)


class _AsyncByteReader:
    """Exact-length reads from a request body as it arrives."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()

    async def take(self, length: int, first: bool = False) -> bytes | None:
        """The next ``length`` bytes; None if ``first`` (a frame's first bytes) and the body
        ended before any of them; ``InvalidFrame`` if it ended mid-frame."""
        while len(self.buffer) < length:
            chunk = await anext(self.chunks, None)
            if chunk is None:
                if first and not self.buffer:
                    return None
                raise InvalidFrame(f"the body ended {length - len(self.buffer)} bytes short of a frame")
            self.buffer += chunk
        with memoryview(self.buffer) as view:
            taken = bytes(view[:length])  # one copy (a slice of the bytearray would be two)
        del self.buffer[:length]  # cheap: a bytearray drops its head by moving its start
        return taken


class NodeApp:
    """The Starlette app of one node: routes, the worker pool and the JSON-RPC server."""

    def __init__(self, node: StorageNode, *, access: LocalAccess | None, limits: NodeLimits,
                 shutdown: Callable[[], None] | None = None) -> None:
        self.node = node
        self.limits = limits
        self.workers = anyio.CapacityLimiter(limits.worker_threads)
        self.rate = ClientRateLimiter(limits.rate) if limits.guarded and limits.rate.enabled else None
        self.rpc = NodeRpc(node, shutdown=shutdown)
        self.server = node_rpc_server(self.rpc, access=access, rate=self.rate,
                                      max_batch_calls=limits.max_batch_calls,
                                      max_response_bytes=limits.max_response_bytes)
        self.app = jsonrpc_app(self.server, self.workers, [
            StarletteRoute("/", self.status, methods=["GET"]),
            StarletteRoute("/health", self.status, methods=["GET"]),
            StarletteRoute("/zgos/v1/segment/{seq}/{index}", self.put_segment, methods=["PUT"]),
            StarletteRoute("/zgos/v1/segment/{seq}/{index}", self.get_segment, methods=["GET"]),
            StarletteRoute("/zgos/v1/segments/{seq}", self.get_segments, methods=["GET"]),
            StarletteRoute("/zgos/v1/segments/{seq}", self.put_segments, methods=["PUT"]),
            StarletteRoute("/zgos/v1/file/{seq}", self.get_file, methods=["GET"]),
            StarletteRoute("/zgos/v1/holdings", self.get_holdings, methods=["GET"]),
        ])

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker (abandoned, not awaited, past the edge's deadline)."""
        return await run_in_worker(self.workers, fn, *args)

    # --- routes --------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self._run(lambda: self.rpc.node_status().to_json()))

    async def put_segment(self, request: Request) -> Response:
        if SEGMENT_PATH.match(request.url.path) is None:
            return json_error(404, f"no such endpoint: PUT {request.url.path}")
        refusal = rate_refusal(self.rate, request, 1, "segments of work")
        if refusal is not None:
            return refusal
        body = await request.body()
        try:
            seq = _number(request.path_params["seq"], "txSeq")
            index = _number(request.path_params["index"], "index")
            root, size = _file_headers(request)
            proof = Proof.from_json(parse_json(request.headers.get("x-zg-proof", "null").encode()))
            segment = SegmentWithProof(root, body, index, proof, size)
            stored = await self._run(self.node.upload_segment, segment, seq)
        except (InvalidSegment, InvalidProof, AlreadyFinalized, InvalidJson) as exc:
            return json_error(400, exc.message if isinstance(exc, ZgError) else str(exc))
        except FileNotFound as exc:
            return json_error(404, str(exc))
        except ZgError as exc:
            return json_error(409, str(exc))
        return JSONResponse({"stored": stored})

    async def get_segment(self, request: Request) -> Response:
        if SEGMENT_PATH.match(request.url.path) is None:
            return json_error(404, f"no such endpoint: GET {request.url.path}")
        refusal = rate_refusal(self.rate, request, 1, "segments of work")
        if refusal is not None:
            return refusal
        try:
            seq = _number(request.path_params["seq"], "txSeq")
            index = _number(request.path_params["index"], "index")
            segment: SegmentWithProof = await self._run(self._segment, seq, index)
        except (FileNotFound, DataUnavailable) as exc:
            return json_error(404, str(exc))
        except ZgError as exc:
            return json_error(400, str(exc))
        proof = json.dumps(segment.proof.to_json(), separators=(",", ":"))
        return Response(segment.data, media_type="application/octet-stream",
                        headers={"x-zg-proof": proof, "x-zg-root": "0x" + segment.root.hex()})

    def _segment(self, seq: int, index: int) -> SegmentWithProof:
        return self.node.segment_with_proof(self.node.tx_by_seq(seq), index)

    async def get_segments(self, request: Request) -> Response | OutgoingFrames:
        if SEGMENTS_PATH.match(request.url.path) is None:
            return json_error(404, f"no such endpoint: GET {request.url.path}")
        try:
            seq = _number(request.path_params["seq"], "txSeq")
            indexes = compute_frame_indexes(_query_number(request, "first"), _query_number(request, "count"),
                                            _query_number(request, "step", 1))
        except (ZgError, InvalidFrame) as exc:
            return json_error(400, str(exc))
        refusal = rate_refusal(self.rate, request, len(indexes), "segments of work")
        if refusal is not None:
            return refusal
        try:  # one worker hop: each wakes the event loop, a fifth of a small request's CPU
            frames: OutgoingFrames = await self._run(lambda: outgoing_frames(self.node, self.node.tx_by_seq(seq), indexes))
        except FileNotFound as exc:
            return json_error(404, str(exc))
        return frames

    async def put_segments(self, request: Request) -> Response:
        if SEGMENTS_PATH.match(request.url.path) is None:
            return json_error(404, f"no such endpoint: PUT {request.url.path}")
        try:
            seq = _number(request.path_params["seq"], "txSeq")
            root, size = _file_headers(request)
        except ZgError as exc:
            return json_error(400, str(exc))
        body = _AsyncByteReader(request.stream())
        batch = self.node.open_batch(seq)  # committed below, after one fsync, before the answer
        added = held = 0
        index = None
        try:
            while (head := await body.take(FRAME_HEADER.size, first=True)) is not None:
                if added + held == MAX_FRAMES_PER_REQUEST:
                    raise InvalidFrame(f"at most {MAX_FRAMES_PER_REQUEST} segments per request")
                refusal = rate_refusal(self.rate, request, 1, "segments of work")
                if refusal is not None:
                    return refusal
                header = decode_frame_header(head)
                index = header.index
                if header.absent:
                    raise InvalidFrame(f"segment {index} has no data")
                proof = decode_proof(await body.take(header.proof_bytes) or b"")
                data = await body.take(header.data_bytes) or b""  # never None: not a frame's first bytes
                is_new = await self._run(self.node.upload_segment, SegmentWithProof(root, data, index, proof, size),
                                         seq, batch)
                added, held = added + is_new, held + (not is_new)
        except FileNotFound as exc:
            return json_error(404, str(exc))
        except ZgError as exc:
            return JSONResponse({"error": exc.message, "index": index}, status_code=400)
        finally:  # what arrived intact is kept, as when each segment was stored alone
            stored = await self._run(self.node.close_batch, batch)
        return JSONResponse({"stored": stored, "held": held + added - stored})

    async def get_file(self, request: Request) -> Response:
        if FILE_PATH.match(request.url.path) is None:
            return json_error(404, f"no such endpoint: GET {request.url.path}")
        try:
            answer = await self._run(self._file_state, _number(request.path_params["seq"], "txSeq"))
        except (FileNotFound, DataUnavailable) as exc:
            return json_error(404, str(exc))
        except ZgError as exc:
            return json_error(400, str(exc))
        return JSONResponse(answer)

    def _file_state(self, seq: int) -> dict[str, Any]:
        record = self.node.tx_by_seq(seq)
        return {"segments": self.node.store.segment_indexes(record.entry.seq), "finalized": record.finalized,
                "size": record.entry.size, "root": "0x" + record.entry.data_root.hex()}

    async def get_holdings(self, request: Request) -> Response:
        texts = request.query_params.getlist("root")
        if len(texts) > MAX_HOLDINGS_ROOTS:
            return json_error(400, f"name at most {MAX_HOLDINGS_ROOTS} files by their data roots (?root=0x..)")
        try:
            roots = [parse_hash(text, "root") for text in texts]
        except InvalidProof as exc:
            return json_error(400, exc.message)
        return JSONResponse(await self._run(self._holdings, roots))

    def _holdings(self, roots: list[bytes]) -> dict[str, Any]:
        files: list[dict[str, Any] | None] = []
        for root in roots:
            record = self.node.tx_by_root(root)
            files.append(None if record is None else {
                "info": self.rpc.file_info(record), "segments": self.node.store.segment_indexes(record.entry.seq)})
        return {"shard": self.node.shard.to_json(), "files": files}


class NodeServer(EdgeServer):
    """A storage node's HTTP front on a hardened uvicorn server bound to ``host:port``.
    ``token`` is the install token its local methods require (None: they are refused), from
    loopback callers, or from any caller with ``remote_admin``, addressed to ``host:port`` or
    ``public_url``;
    ``serve`` returns on SIGINT/SIGTERM or ``admin_shutdown``."""

    def __init__(self, host: str, port: int, node: StorageNode, *, token: str | None,
                 limits: NodeLimits | None = None, public_url: str | None = None, remote_admin: bool = False) -> None:
        self.limits = limits or NodeLimits()
        sock = bind_listener(host, port)
        access = (LocalAccess.for_listener(token, host, sock.getsockname()[1], public_url=public_url, remote=remote_admin)
                  if token else None)
        self.front = NodeApp(node, access=access, limits=self.limits, shutdown=self.stop_soon)
        super().__init__(self.front.app, sock, self.limits.policy(access))

    @property
    def rpc(self) -> NodeRpc:
        """The node's JSON-RPC methods; parts beside the node extend them through its hook."""
        return self.front.rpc

    @property
    def methods(self) -> dict[str, Any]:
        """The JSON-RPC method table, as served."""
        return self.front.rpc.methods
