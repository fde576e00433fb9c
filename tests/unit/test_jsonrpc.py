"""The one JSON-RPC dispatch (zgos.runtime.jsonrpc): parsing, batch and response caps,
notifications, typed errors, local methods and rate limits, without a network."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.core.errors import ZgError
from zgos.runtime.access import LocalAccess
from zgos.runtime.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH_CALLS,
    MAX_INT64,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RESPONSE_TOO_LARGE,
    SERVER_ERROR,
    Caller,
    HttpAnswer,
    JsonRpcServer,
    RpcError,
    validate_int,
)
from zgos.runtime.ratelimit import ClientRateLimiter, RateLimit

LOCAL = Caller("127.0.0.1", {"host": "127.0.0.1:5678"})


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, params: list[Any]) -> int:
        self.calls += 1
        return self.calls


def call(method: str, *params: Any, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def post(server: JsonRpcServer, body: Any, caller: Caller = LOCAL) -> HttpAnswer:
    return server.handle(body if isinstance(body, bytes) else json.dumps(body).encode(), caller)


def answer_of(server: JsonRpcServer, body: Any, caller: Caller = LOCAL) -> Any:
    answer = post(server, body, caller)
    assert answer.status == 200, answer
    return json.loads(answer.body)


def test_whole_request_errors_have_standard_codes() -> None:
    server = JsonRpcServer({"ping": lambda p: "pong"})
    assert answer_of(server, b"{oops")["error"]["code"] == PARSE_ERROR
    assert answer_of(server, b"\xff\xfe")["error"]["code"] == PARSE_ERROR
    deep = answer_of(server, b"[" * 100_000)
    assert deep["error"]["code"] == PARSE_ERROR and "deeper than" in deep["error"]["message"]
    assert answer_of(server, [])["error"]["code"] == INVALID_REQUEST
    assert answer_of(server, call("ping")) == {"jsonrpc": "2.0", "id": 1, "result": "pong"}


def test_batches_above_the_cap_are_refused_before_any_call_runs() -> None:
    counter = Counter()
    server = JsonRpcServer({"count": counter})
    refused = answer_of(server, [call("count", request_id=i) for i in range(MAX_BATCH_CALLS + 1)])
    assert refused["error"]["code"] == INVALID_REQUEST and f"larger than {MAX_BATCH_CALLS}" in refused["error"]["message"]
    assert counter.calls == 0
    served = answer_of(server, [call("count", request_id=i) for i in range(MAX_BATCH_CALLS)])
    assert [a["id"] for a in served] == list(range(MAX_BATCH_CALLS)) and counter.calls == MAX_BATCH_CALLS


def test_bad_calls_in_a_batch_get_their_own_errors() -> None:
    server = JsonRpcServer({"ping": lambda p: "pong"})
    answers = answer_of(server, [call("ping"), 7, {"jsonrpc": "1.0", "id": 3, "method": "ping"},
                                 {"jsonrpc": "2.0", "id": True, "method": "ping"},
                                 {"jsonrpc": "2.0", "id": 5, "method": "ping", "params": "x"}, call("nope", request_id=6)])
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [None, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST, INVALID_PARAMS, METHOD_NOT_FOUND]


def test_notifications_run_without_an_answer() -> None:
    counter = Counter()
    server = JsonRpcServer({"count": counter})
    notification = {"jsonrpc": "2.0", "method": "count"}
    assert post(server, notification) == HttpAnswer(204, b"")
    assert post(server, [notification, notification]) == HttpAnswer(204, b"")
    assert counter.calls == 3
    mixed = answer_of(server, [notification, call("count", request_id="a")])
    assert mixed == [{"jsonrpc": "2.0", "id": "a", "result": 5}]


def test_errors_are_typed_and_a_bug_never_leaks_its_text(caplog: pytest.LogCaptureFixture) -> None:
    def typed(params: list[Any]) -> None:
        raise RpcError(INVALID_PARAMS, "x must be small")

    def user_error(params: list[Any]) -> None:
        raise ZgError("no such file", "check the root")

    def bug(params: list[Any]) -> None:
        raise KeyError("secret internals")

    server = JsonRpcServer({"typed": typed, "user": user_error, "bug": bug})
    assert answer_of(server, call("typed"))["error"] == {"code": INVALID_PARAMS, "message": "x must be small"}
    assert answer_of(server, call("user"))["error"] == {"code": SERVER_ERROR, "message": "no such file (check the root)"}
    with caplog.at_level(logging.ERROR):
        answer = answer_of(server, call("bug"))
    assert answer["error"] == {"code": INTERNAL_ERROR, "message": "internal error in bug"}
    assert "secret" not in json.dumps(answer) and "secret internals" in caplog.text


def test_a_batch_stops_running_once_its_answer_passes_the_response_cap() -> None:
    counter = Counter()

    def big(params: list[Any]) -> str:
        counter(params)
        return "x" * 1000

    server = JsonRpcServer({"big": big}, max_response_bytes=3500)
    answers = answer_of(server, [call("big", request_id=i) for i in range(10)])
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [None, None, None, RESPONSE_TOO_LARGE] + [RESPONSE_TOO_LARGE] * 6
    assert counter.calls == 4, "calls after the cap did not run"
    assert len(post(server, [call("big", request_id=i) for i in range(10)]).body) < 3500 + 7 * 200
    single = answer_of(JsonRpcServer({"big": big}, max_response_bytes=500), call("big"))
    assert single["error"]["code"] == RESPONSE_TOO_LARGE


def admin_server(access: LocalAccess | None) -> JsonRpcServer:
    return JsonRpcServer({"admin_stop": lambda p: True, "ping": lambda p: "pong"},
                         is_local=lambda m: m.startswith("admin_"), access=access)


def test_local_methods_need_loopback_host_origin_and_token() -> None:
    access = LocalAccess.for_listener("tok", "127.0.0.1", 5678)
    server = admin_server(access)
    operator = {"host": "127.0.0.1:5678", "authorization": "Bearer tok"}
    assert answer_of(server, call("admin_stop"), Caller("127.0.0.1", operator))["result"] is True
    refusals = {
        "remote": post(server, call("admin_stop"), Caller("10.0.0.7", operator)),
        "no token": post(server, call("admin_stop"), Caller("127.0.0.1", {"host": "127.0.0.1:5678"})),
        "page": post(server, call("admin_stop"), Caller("127.0.0.1", {**operator, "origin": "http://evil.example"})),
        "rebinding": post(server, call("admin_stop"), Caller("127.0.0.1", {**operator, "host": "evil.example:5678"})),
        "hidden in a batch": post(server, [call("ping"), call("admin_stop")], Caller("127.0.0.1", {"host": "x"})),
    }
    assert {name: a.status for name, a in refusals.items()} == {
        "remote": 403, "no token": 401, "page": 403, "rebinding": 403, "hidden in a batch": 403}
    assert all("error" in json.loads(a.body) for a in refusals.values())
    assert answer_of(server, call("ping"), Caller("10.0.0.7", {}))["result"] == "pong", "public methods stay public"
    disabled = post(admin_server(None), call("admin_stop"), Caller("127.0.0.1", operator))
    assert disabled.status == 403 and "no install token" in json.loads(disabled.body)["error"]


def test_expensive_calls_are_rate_limited_per_client() -> None:
    now = [0.0]
    rate = ClientRateLimiter(RateLimit(per_s=2, burst=4), clock=lambda: now[0])
    server = JsonRpcServer({"heavy": lambda p: 1, "cheap": lambda p: 2}, rate=rate,
                           cost=lambda c: 1.0 if c.method == "heavy" else 0.0)
    me, other = Caller("10.0.0.1", {}), Caller("10.0.0.2", {})
    assert all(post(server, call("heavy"), me).status == 200 for _ in range(4))
    limited = post(server, call("heavy"), me)
    assert limited.status == 429 and dict(limited.headers)["retry-after"] == "1"
    assert post(server, call("cheap"), me).status == 200, "cheap calls are free"
    assert post(server, call("heavy"), other).status == 200, "buckets are per client"
    now[0] = 0.5
    assert post(server, call("heavy"), me).status == 200, "refilled at 2 per second"
    too_big = post(server, [call("heavy", request_id=i) for i in range(5)], other)
    assert too_big.status == 429 and "split it" in json.loads(too_big.body)["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=150)
@given(json_values | st.lists(st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "method": st.sampled_from(["ping", "n"]),
                                                     "params": json_values, "id": json_values}), max_size=5))
def test_any_json_body_gets_a_well_formed_answer(body: Any) -> None:
    server = JsonRpcServer({"ping": lambda p: "pong", "n": lambda p: validate_int(p[0] if p else None, "n")})
    answer = post(server, body)
    assert answer.status in (200, 204)
    if answer.status == 200:
        decoded = json.loads(answer.body)
        for item in decoded if isinstance(decoded, list) else [decoded]:
            assert item["jsonrpc"] == "2.0" and ("result" in item) != ("error" in item)


@given(st.integers(-(2**70), 2**70) | st.booleans() | st.floats() | st.text(max_size=3) | st.none())
def test_validate_int_accepts_exactly_the_integers_in_range(value: Any) -> None:
    in_range = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT64
    try:
        assert validate_int(value, "txSeq") == value and in_range
    except RpcError as exc:
        assert not in_range and exc.code == INVALID_PARAMS and "0..9223372036854775807" in exc.message


def test_named_params_are_taken_in_order() -> None:
    seen: list[list[Any]] = []
    server = JsonRpcServer({"record": seen.append})
    answer = answer_of(server, {"jsonrpc": "2.0", "id": "x", "method": "record", "params": {"a": 1, "b": 2}})
    assert seen == [[1, 2]] and answer == {"jsonrpc": "2.0", "id": "x", "result": None}


def test_a_call_stuck_in_its_worker_meets_the_edge_deadline() -> None:
    import time

    import anyio
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Route as StarletteRoute

    from zgos.runtime.edge import EdgePolicy, Route, plain_error_body
    from zgos.runtime.jsonrpc import ENDPOINT_ERRORS, jsonrpc_endpoint
    from zgos.runtime.serve import EdgeServer, bind_listener

    workers = anyio.CapacityLimiter(2)
    server = JsonRpcServer({"stuck": lambda p: time.sleep(3), "ping": lambda p: "pong"})
    app = Starlette(routes=[StarletteRoute("/", jsonrpc_endpoint(server, workers), methods=["POST"])],
                    exception_handlers=ENDPOINT_ERRORS)
    running = EdgeServer(app, bind_listener("127.0.0.1", 0),
                         EdgePolicy(routes=(Route("/", deadline_s=0.5),), error_body=plain_error_body))
    running.start()
    try:
        started = time.monotonic()
        stuck = httpx.post(running.url, json=call("stuck"), timeout=10)
        assert stuck.status_code == 504 and time.monotonic() - started < 2.5
        assert httpx.post(running.url, json=call("ping"), timeout=10).json()["result"] == "pong"
        assert httpx.get(running.url + "/nowhere", timeout=10).json() == {"error": "no such endpoint: GET /nowhere"}
    finally:
        running.stop()
