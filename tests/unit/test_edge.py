"""The guarded edge: JSON depth, the install token, local access, and the middleware on a real
uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from zgos.core.errors import ConfigError, ZgError
from zgos.runtime import edge, ratelimit, serve
from zgos.runtime.access import LocalAccess, load_or_create_token, presented_token, read_token
from zgos.runtime.edge import EdgePolicy, InvalidJson, Route, compute_json_depth, parse_json
from zgos.runtime.netutil import free_port, wait_until
from zgos.runtime.serve import bind_listener, hardened_server

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab[]{}\"\\ ,:"),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=30,
)


def reference_depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_json_depth_ignores_brackets_inside_strings(value: object) -> None:
    assert compute_json_depth(json.dumps(value).encode()) == reference_depth(value)


@given(json_values)
def test_parse_json_round_trips_shallow_values(value: object) -> None:
    assert parse_json(json.dumps(value).encode(), max_depth=64) == value


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidJson, match="deeper than 64"):
        parse_json(b"[" * 100_000)
    with pytest.raises(InvalidJson, match="not valid JSON"):
        parse_json(b"\xff\xfe[")


def test_deep_nesting_cannot_crash_the_process_even_with_a_raised_recursion_limit() -> None:
    # What py_ecc does at import; the C decoder would overflow the C stack on this body.
    code = ("import sys; sys.setrecursionlimit(100000)\n"
            "from zgos.runtime.edge import parse_json, InvalidJson\n"
            "try:\n    parse_json(b'[' * 100000 + b']' * 100000)\nexcept InvalidJson as e:\n    print('refused', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "refused" in result.stdout


def test_recursion_limit_is_restored_after_imports_that_raise_it() -> None:
    code = ("import web3, eth_account, py_ecc, sys\n"
            "from zgos.runtime.edge import restore_process_state, validate_process_state\n"
            "restore_process_state(); validate_process_state(); print(sys.getrecursionlimit())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(edge.PYTHON_RECURSION_LIMIT)


def test_install_token_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = load_or_create_token(path)
    assert len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_token(path) == token
    path.chmod(0o644)
    with pytest.raises(ZgError, match="readable by others"):
        read_token(path)
    with pytest.raises(ZgError, match="cannot read"):
        read_token(tmp_path / "missing")


def test_token_is_taken_from_bearer_or_header() -> None:
    assert presented_token({"authorization": "Bearer abc"}) == "abc"
    assert presented_token({"x-zg-token": "xyz"}) == "xyz"
    assert presented_token({"authorization": "Basic abc"}) is None
    assert presented_token({}) is None


def test_local_access_checks_host_origin_and_token() -> None:
    access = LocalAccess.for_listener("secret", "127.0.0.1", 8787)
    ok = {"host": "127.0.0.1:8787", "authorization": "Bearer secret"}
    assert access.check(ok) is None
    assert access.check({**ok, "host": "localhost:8787", "origin": "http://localhost:8787"}) is None
    rebinding = access.check({**ok, "host": "evil.example:8787"})
    assert rebinding is not None and rebinding.status == 403
    page = access.check({**ok, "origin": "http://evil.example"})
    assert page is not None and page.status == 403 and "origin" in page.message
    no_token = access.check({"host": "127.0.0.1:8787"})
    assert no_token is not None and no_token.status == 401
    wrong = access.check({**ok, "authorization": "Bearer guess"})
    assert wrong is not None and wrong.status == 401


# --- the middleware on a real server ------------------------------------------------------


async def echo(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "5")))
    return JSONResponse({"ok": True})


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def endless(request: Request) -> Response:
    async def chunks():  # type: ignore[no-untyped-def]
        while True:
            yield b"data: x\n\n"
            await asyncio.sleep(0.05)

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def first_chunk(request: Request) -> Response:
    """Answers after the body's first chunk: a streamed route's app sees the body as it arrives."""
    async for chunk in request.stream():
        return JSONResponse({"first": len(chunk)})
    return JSONResponse({"first": 0})


APP = Starlette(routes=[
    StarletteRoute("/echo", echo, methods=["POST"]), StarletteRoute("/local/echo", echo, methods=["POST"]),
    StarletteRoute("/streamed/echo", echo, methods=["POST"]), StarletteRoute("/streamed/first", first_chunk, methods=["POST"]),
    StarletteRoute("/slow", slow), StarletteRoute("/boom", boom), StarletteRoute("/stream", endless),
])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    policy = EdgePolicy(
        routes=(Route("/", max_body_bytes=1000, deadline_s=1.0),
                Route("/local", local=True), Route("/stream", deadline_s=0.5),
                Route("/streamed", max_body_bytes=1 << 20, stream_body=True)),
        max_inflight=4, access=LocalAccess.for_listener("tok", "127.0.0.1", port),
    )
    uvicorn_server = hardened_server(APP, host="127.0.0.1", port=port, policy=policy)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: httpx.get(url + "/boom").status_code == 500, 15)
    yield url
    uvicorn_server.should_exit = True
    thread.join(10)


def test_an_oversized_body_is_refused_before_it_is_read(server: str) -> None:
    answer = httpx.post(server + "/echo", content=b"x" * 1001, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "1000 bytes" in answer.json()["error"]["message"]
    assert httpx.post(server + "/echo", content=b"x" * 1000,
                      headers={"content-type": "application/json"}).json() == {"size": 1000}


def test_a_streamed_body_past_the_cap_is_cut_off(server: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100

    answer = httpx.post(server + "/echo", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_a_streamed_route_needs_a_length_within_its_cap_and_hands_the_body_on_as_it_arrives(server: str) -> None:
    json_type = {"content-type": "application/json"}
    assert httpx.post(server + "/streamed/echo", content=b"x" * 5000, headers=json_type).json() == {"size": 5000}
    assert httpx.post(server + "/streamed/echo", content=b"x" * ((1 << 20) + 1), headers=json_type).status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        yield b"x" * 100

    unsized = httpx.post(server + "/streamed/echo", content=chunks(), headers=json_type)
    assert unsized.status_code == 411 and "Content-Length" in unsized.json()["error"]["message"]
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"POST /streamed/first HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000)  # the rest never comes
        raw.settimeout(5)
        answer = b""
        while not answer.endswith(b"}") and (chunk := raw.recv(4096)):  # head and body may be two packets
            answer += chunk
    first = json.loads(answer.split(b"\r\n\r\n", 1)[1])["first"]
    assert answer.startswith(b"HTTP/1.1 200") and 0 < first <= 1000, "answered before the body was complete"


def test_a_cross_origin_text_plain_post_is_refused(server: str) -> None:
    answer = httpx.post(server + "/echo", content=b"{}", headers={"content-type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]["message"]


def test_local_routes_need_host_origin_and_token(server: str) -> None:
    body = {"content": b"{}", "headers": {"content-type": "application/json", "authorization": "Bearer tok"}}
    assert httpx.post(server + "/local/echo", **body).status_code == 200  # type: ignore[arg-type]
    assert httpx.post(server + "/local/echo", content=b"{}",
                      headers={"content-type": "application/json"}).status_code == 401
    page = httpx.post(server + "/local/echo", content=b"{}",
                      headers={**body["headers"], "origin": "http://evil.example"})  # type: ignore[dict-item]
    assert page.status_code == 403


def test_a_slow_handler_meets_the_deadline(server: str) -> None:
    started = time.monotonic()
    answer = httpx.get(server + "/slow?s=5", timeout=10)
    assert answer.status_code == 504
    assert time.monotonic() - started < 3


def test_an_endless_stream_is_cut_at_its_deadline(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", server + "/stream", timeout=10) as answer:
        for _ in answer.iter_bytes():
            pass
    assert time.monotonic() - started < 3


def test_a_handler_bug_is_a_500_without_a_traceback(server: str) -> None:
    answer = httpx.get(server + "/boom")
    assert answer.status_code == 500
    assert "secret internals" not in answer.text and "Traceback" not in answer.text


def test_no_keep_alive_desync_after_a_malformed_request(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        # A refused request whose body was never read: the edge closes the connection rather
        # than parse the body's bytes as the next request line.
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n\r\n"
                     b"[]POST /echo HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 415")
    assert b"501" not in answer and answer.count(b"HTTP/1.1") == 1


def test_requests_beyond_the_inflight_bound_get_503(server: str) -> None:
    results: list[int] = []

    def call() -> None:
        results.append(httpx.get(server + "/slow?s=0.6", timeout=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 4 and results.count(503) == 4, results


def test_disabled_policy_passes_everything_through() -> None:
    async def run() -> int:
        policy = EdgePolicy(routes=(Route(max_body_bytes=1),), enabled=False)
        transport = httpx.ASGITransport(app=edge.GuardedEdge(APP, policy))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.post("/echo", content=b"xxxx", headers={"content-type": "text/plain"})).status_code

    assert asyncio.run(run()) == 200



def test_services_starting_at_once_all_read_one_whole_token(tmp_path: Path) -> None:
    path = tmp_path / "install" / "token"
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(load_or_create_token(path))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 16 and len(set(tokens)) == 1 and len(tokens[0]) >= 32
    assert sorted(p.name for p in path.parent.iterdir()) == ["token"]
# --- per-client rate limits ------------------------------------------------------------------


@given(st.lists(st.tuples(st.floats(0, 2), st.sampled_from(["a", "b"]), st.floats(0.1, 3)), max_size=60))
def test_a_client_is_never_admitted_more_than_burst_plus_rate_times_time(steps: list[tuple[float, str, float]]) -> None:
    now = [0.0]
    limiter = ratelimit.ClientRateLimiter(ratelimit.RateLimit(per_s=5, burst=10), clock=lambda: now[0])
    admitted = {"a": 0.0, "b": 0.0}
    for dt, client, cost in steps:
        now[0] += dt
        wait = limiter.take(client, cost)
        if wait == 0:
            admitted[client] += cost
        else:
            assert wait > 0
        assert admitted[client] <= 10 + 5 * now[0] + 1e-9


def test_a_refused_client_may_retry_after_the_wait_it_was_told() -> None:
    now = [0.0]
    limiter = ratelimit.ClientRateLimiter(ratelimit.RateLimit(per_s=2, burst=2), clock=lambda: now[0])
    assert limiter.take("a", 2) == 0
    wait = limiter.take("a", 1)
    assert wait == pytest.approx(0.5)
    now[0] += wait
    assert limiter.take("a", 1) == 0
    assert limiter.take("a", 3) == float("inf"), "a cost above the burst is never admitted"
    assert ratelimit.ClientRateLimiter(ratelimit.RateLimit(0, 0)).take("a", 10**9) == 0, "per_s 0: no limit"


def test_rate_limit_memory_is_bounded() -> None:
    limiter = ratelimit.ClientRateLimiter(ratelimit.RateLimit(per_s=1, burst=1), max_clients=100)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}", 1)
    assert len(limiter._buckets) == 100


def test_a_server_thread_reports_a_taken_port_and_stops_cleanly() -> None:
    sock = serve.bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = hardened_server(APP, host="127.0.0.1", port=port, policy=EdgePolicy())
    running = serve.ServerThread(server, sock)
    running.start()
    assert httpx.get(f"http://127.0.0.1:{port}/boom").status_code == 500
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve.bind_listener("127.0.0.1", port)
    running.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/boom")


def test_a_request_head_sent_too_slowly_is_cut_off(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "HEAD_TIMEOUT_S", 0.5)  # read when each connection is made
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n")  # ... and the rest of the head never comes
        assert sock.recv(100) == b"", "closed without an answer"
        assert time.monotonic() - started < 5
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # a slow but timely head is served
        for piece in (b"GET /slow?s=0 HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(0.1)
        assert sock.recv(100).startswith(b"HTTP/1.1 200")


def test_connections_to_a_bound_listener_have_nagle_off() -> None:
    """An answer written as headers then body must not wait for the client's delayed ACK."""
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(accept_one())
    assert seen == [1]
