"""The JSON-RPC client (``zgos.runtime.netutil.call_jsonrpc``) against a real zgos JSON-RPC
server on 127.0.0.1 and against peers that answer badly: each failure is its own type, and an
error answer carries its JSON-RPC code, so no caller has to read the message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route as StarletteRoute

from tests.adversarial.hostile_http import HostileServer, json_answer
from zgos.core.errors import ZgError
from zgos.runtime.edge import EdgePolicy
from zgos.runtime.jsonrpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SERVER_ERROR,
    JsonRpcServer,
    RpcError,
    jsonrpc_endpoint,
)
from zgos.runtime.netutil import (
    JsonRpcCallError,
    JsonRpcFailure,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
    free_port,
)
from zgos.runtime.serve import EdgeServer, bind_listener


def _refuse(params: list[Any]) -> None:
    raise RpcError(INVALID_PARAMS, "txSeq must be an integer")


def _fail(params: list[Any]) -> None:
    raise ZgError("file 7 is already uploaded and finalized")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    rpc = JsonRpcServer({"echo": lambda params: params, "refuse": _refuse, "fail": _fail})
    app = Starlette(routes=[StarletteRoute("/", jsonrpc_endpoint(rpc, anyio.CapacityLimiter(2)), methods=["POST"])])
    server = EdgeServer(app, bind_listener("127.0.0.1", 0), EdgePolicy())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_result_is_returned(server_url: str) -> None:
    with httpx.Client() as http:
        assert call_jsonrpc(http, server_url, "echo", [1, "two"]) == [1, "two"]


@pytest.mark.parametrize(("method", "code", "message"), [
    ("refuse", INVALID_PARAMS, "txSeq must be an integer"),
    ("fail", SERVER_ERROR, "file 7 is already uploaded and finalized"),
    ("nosuch", METHOD_NOT_FOUND, "method not found: nosuch"),
])
def test_an_error_answer_carries_its_json_rpc_code(server_url: str, method: str, code: int, message: str) -> None:
    with httpx.Client() as http, pytest.raises(JsonRpcCallError) as caught:
        call_jsonrpc(http, server_url, method)
    assert (caught.value.code, caught.value.message) == (code, message)
    assert str(caught.value) == message


def test_an_error_object_of_a_stranger_s_shape_has_no_code() -> None:
    answers = [{"error": "just a string"}, {"error": {"code": "7", "message": "x"}}, {"error": {"code": True}}]
    for answer in answers:
        with HostileServer(json_answer({"jsonrpc": "2.0", "id": 1, **answer})) as peer, httpx.Client() as http:
            with pytest.raises(JsonRpcCallError) as caught:
                call_jsonrpc(http, peer.url, "zgs_getStatus")
            assert caught.value.code is None


def test_an_error_object_s_data_is_kept() -> None:
    error = {"code": -32000, "message": "execution reverted", "data": "0x08c379a0"}
    with (HostileServer(json_answer({"jsonrpc": "2.0", "id": 1, "error": error})) as peer, httpx.Client() as http,
          pytest.raises(JsonRpcCallError) as caught):
        call_jsonrpc(http, peer.url, "eth_call")
    assert (caught.value.code, caught.value.data) == (-32000, "0x08c379a0")


def test_an_answer_that_is_not_a_response_object_is_not_json() -> None:
    with HostileServer(json_answer([1, 2])) as peer, httpx.Client() as http, pytest.raises(JsonRpcNotJson):
        call_jsonrpc(http, peer.url, "zgs_getStatus")


def test_a_server_that_is_not_there_is_a_transport_error() -> None:
    with httpx.Client() as http, pytest.raises(JsonRpcUnreachable) as caught:
        call_jsonrpc(http, f"http://127.0.0.1:{free_port()}", "zgs_getStatus")
    assert not isinstance(caught.value, JsonRpcCallError)
    assert isinstance(caught.value, JsonRpcFailure)
