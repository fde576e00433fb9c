"""The fuzz harness itself: seeded and reproducible, every kind of case generated, responses
counted by their framing, and a fragile service is caught (a 5xx, a traceback, a hang)."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.adversarial.httpfuzz import (
    KINDS,
    FuzzCase,
    FuzzProfile,
    generate_cases,
    parse_statuses,
    run_cases,
)
from zgos.runtime.serve import ServerThread, bind_listener

PROFILE = FuzzProfile(rpc_methods=("echo", "sum"), get_paths=("/item/{n}", "/hash/{h}", "/{s}"),
                      raw_uploads=(("/blob/{n}", "application/octet-stream"),), upload_headers=("X-Size",),
                      numbers=(7,), hashes=("0x" + "cd" * 32,))


def test_the_same_seed_gives_the_same_cases_and_every_kind_appears() -> None:
    first, again, other = (generate_cases(PROFILE, seed, 500) for seed in (1, 1, 2))
    assert first == again and first != other
    assert {case.kind for case in generate_cases(PROFILE, 3, 1000)} == set(KINDS)


def test_statuses_are_counted_by_framing_not_by_text() -> None:
    body = b"HTTP/1.1 500 inside a body\r\n\r\n"
    answer = (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body
              + b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n5\r\nHTTP/\r\n0\r\n\r\n"
              + b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    assert parse_statuses(answer) == [200, 404, 400]


async def fragile(request: Request) -> Response:
    """A careless JSON service: trusts every body, shows its tracebacks, hangs on one input."""
    try:
        payload = json.loads(await request.body())
        if payload.get("method") == "echo" and payload.get("params") == []:
            await asyncio.sleep(3600)
        return JSONResponse({"result": sum(payload["params"])})
    except (ValueError, TypeError, AttributeError):
        return PlainTextResponse(traceback.format_exc(), status_code=400)


@pytest.fixture(scope="module")
def fragile_url() -> Iterator[tuple[str, int]]:
    sock = bind_listener("127.0.0.1", 0)
    config = uvicorn.Config(Starlette(routes=[Route("/", fragile, methods=["POST"])]), log_level="critical",
                            timeout_graceful_shutdown=1)
    server = ServerThread(uvicorn.Server(config), sock)
    server.start()
    yield "127.0.0.1", server.port
    server.stop()


def test_a_fragile_service_is_caught(fragile_url: tuple[str, int]) -> None:
    host, port = fragile_url
    cases = [case for case in generate_cases(PROFILE, 5, 300) if case.kind in ("rpc", "bytes")]
    body = b'{"jsonrpc":"2.0","method":"echo","params":[]}'
    hang = FuzzCase("rpc", (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body),))
    report = run_cases(host, port, [*cases, hang], timeout_s=2)
    assert report.server_errors(), "KeyError on a body without params is a 500"
    assert report.tracebacks(), "a traceback shown to the client is caught"
    assert hang in [e.case for e in report.hung()]
    assert report.problems().startswith("5xx: ")
