"""Helpers for ``bench_compute``: a fast stub model server and bare pass-through proxies.

They exist only to measure the broker's own cost (issue 4 allows a stub upstream for the
throughput benchmark only), and to give the billing tests a stream they can cut anywhere
(the stub streams like llama-cpp-python's server: a role chunk, one chunk per "token" every
``STREAM_TOKEN_INTERVAL_S``, a finish chunk, ``[DONE]``; it stops when its client leaves).
Run as ``python -m bench.compute_servers stub PORT`` or
``python -m bench.compute_servers passthrough|passthrough-aiohttp PORT UPSTREAM``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import AsyncIterator

import aiohttp
import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

STUB_ANSWER = (
    b'{"id":"chatcmpl-stub","object":"chat.completion","created":0,"model":"gemma-3-270m",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":7,"total_tokens":17}}'
)


STREAM_WORDS = ("Paris", " is", " the", " capital", " of", " France", ",", " on", " the", " Seine", ".")
STREAM_TOKEN_INTERVAL_S = 0.004
STALL_FIELD = "zg_stub_stall_after"


def _stream_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": "gemma-3-270m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def _stream(request: Request, tokens: int, stall_after: int | None) -> AsyncIterator[bytes]:
    yield _stream_chunk({"role": "assistant", "content": None})
    for index, word in enumerate(itertools.islice(itertools.cycle(STREAM_WORDS), tokens)):
        await asyncio.sleep(STREAM_TOKEN_INTERVAL_S)
        while index == stall_after and not await request.is_disconnected():  # a model server gone silent
            await asyncio.sleep(0.05)
        if await request.is_disconnected():
            return
        yield _stream_chunk({"content": word})
    yield _stream_chunk({}, "length")
    yield b"data: [DONE]\n\n"


def stub_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        if body.get("stream") is True:
            stall = body.get(STALL_FIELD)  # test hook: stop sending after this many tokens
            return StreamingResponse(_stream(request, int(body.get("max_tokens", 16)), stall),
                                     media_type="text/event-stream")
        return Response(STUB_ANSWER, media_type="application/json")

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": "gemma-3-270m"}]}

    return app


def passthrough_app(upstream: str) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    @app.post("/v1/proxy/chat/completions")
    async def chat(request: Request) -> Response:
        answer = await client.post(upstream + "/v1/chat/completions", content=await request.body(),
                                   headers={"content-type": "application/json"})
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def aiohttp_passthrough_app(upstream: str) -> FastAPI:
    """The same pass-through with the broker's upstream client library (aiohttp)."""
    app = FastAPI()
    session: list[aiohttp.ClientSession] = []

    @app.post("/v1/proxy/chat/completions")
    async def chat(request: Request) -> Response:
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)))
        async with session[0].post(upstream + "/v1/chat/completions", data=await request.body(),
                                   headers={"content-type": "application/json"}) as answer:
            return Response(await answer.read(), status_code=answer.status, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    apps = {"passthrough": passthrough_app, "passthrough-aiohttp": aiohttp_passthrough_app}
    app = stub_app() if kind == "stub" else apps[kind](sys.argv[3])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
