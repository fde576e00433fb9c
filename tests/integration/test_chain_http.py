"""The chain transport's own HTTP (``transport.KeptAlivePost``) against real servers on
127.0.0.1: a kept-alive connection the server closed while idle is replaced before a request is
written to it (so a call that is never repeated, such as ``eth_sendRawTransactionSync``, does not
fail on it, and a read does not wait out a backoff), an RPC URL's user and
password become HTTP basic auth, the environment's HTTP proxy carries the calls, and an answer
over the size bound is refused."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from web3.types import RPCEndpoint

from zgos.chain import transport
from zgos.chain.transport import RetryingHTTPProvider
from zgos.core.errors import ChainError
from zgos.runtime.netutil import wait_until


class RpcStub(ThreadingHTTPServer):
    """Answers every JSON-RPC call with ``result`` (``padding`` extra bytes of it), keeps the
    connection open after the answer but closes it right after, as an idle-timeout would."""

    daemon_threads = True

    def __init__(self, padding: int = 0) -> None:
        self.connections = 0
        self.closed = 0
        self.paths: list[str] = []
        self.authorization: list[str | None] = []
        self.padding = padding
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)  # type: ignore[arg-type]
        self.closed += 1

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: no "Connection: close" in the answer
    server: RpcStub

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.authorization.append(self.headers.get("Authorization"))
        self.server.paths.append(self.path)
        body = json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": "0x1" + "0" * self.server.padding}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True  # closed once answered, without saying so: the idle close


@pytest.fixture
def stub() -> Iterator[RpcStub]:
    server = RpcStub()
    yield server
    server.shutdown()
    server.server_close()


def test_a_call_after_the_server_closed_the_idle_connection_goes_out_on_a_new_one(stub: RpcStub) -> None:
    slept: list[float] = []
    provider = RetryingHTTPProvider(f"http://127.0.0.1:{stub.port}", timeout_s=5, sleep=slept.append)
    assert provider.make_request(RPCEndpoint("eth_blockNumber"), [])["result"] == "0x1"
    wait_until(lambda: stub.closed == 1, 5)
    # web3 never repeats this one after a failed write: the closed connection must not be used
    answer = provider.make_request(RPCEndpoint("eth_sendRawTransactionSync"), ["0x00"])
    assert answer["result"] == "0x1"
    wait_until(lambda: stub.closed == 2, 5)
    assert provider.make_request(RPCEndpoint("eth_blockNumber"), [])["result"] == "0x1"
    assert stub.connections == 3
    assert slept == [], "no backoff: no request met a closed connection"


def test_the_rpc_urls_user_and_password_are_sent_as_basic_auth(stub: RpcStub) -> None:
    provider = RetryingHTTPProvider(f"http://alice:pa%20ss@127.0.0.1:{stub.port}/", timeout_s=5)
    provider.make_request(RPCEndpoint("eth_blockNumber"), [])
    assert stub.authorization == ["Basic " + base64.b64encode(b"alice:pa ss").decode()]


def test_an_answer_over_the_size_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 1000)
    server = RpcStub(padding=2000)
    try:
        provider = RetryingHTTPProvider(f"http://127.0.0.1:{server.port}", timeout_s=5)
        with pytest.raises(ChainError, match="answered more than 1000 bytes"):
            provider.make_request(RPCEndpoint("eth_blockNumber"), [])
    finally:
        server.shutdown()
        server.server_close()


def test_the_environments_proxy_carries_the_calls(stub: RpcStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{stub.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = RetryingHTTPProvider("http://rpc.invalid:8545/", timeout_s=5)  # reachable only through it
    assert provider.make_request(RPCEndpoint("eth_blockNumber"), [])["result"] == "0x1"
    assert stub.paths == ["http://rpc.invalid:8545/"]
