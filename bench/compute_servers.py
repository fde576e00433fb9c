"""Helpers for ``bench_compute``: a fast stub model server and a bare pass-through proxy.

Both exist only to measure the broker's own cost (issue 4 allows a stub upstream for the
throughput benchmark only). Run as ``python -m bench.compute_servers stub PORT`` or
``python -m bench.compute_servers passthrough PORT UPSTREAM``.
"""

from __future__ import annotations

import sys

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

STUB_ANSWER = (
    b'{"id":"chatcmpl-stub","object":"chat.completion","created":0,"model":"gemma-3-270m",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":7,"total_tokens":17}}'
)


def stub_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        await request.body()
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


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    app = stub_app() if kind == "stub" else passthrough_app(sys.argv[3])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
