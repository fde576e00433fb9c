"""A real HTTP server in front of a chain RPC that behaves like a strict public endpoint: it
refuses every other request with HTTP 429 (``Retry-After: 0``), and it does not know
``eth_sendRawTransactionSync`` (JSON-RPC -32601), as most EVM nodes other than anvil do not."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from zgos.runtime.netutil import free_port

SYNC_SEND = "eth_sendRawTransactionSync"


class StrictRpcProxy:
    """``url`` forwards JSON-RPC to ``target``; counts what it refused and forwarded."""

    def __init__(self, target: str, *, refuse_every: int = 2, host: str = "127.0.0.1") -> None:
        self.target = target
        self.refuse_every = refuse_every  # 0: never refuse
        self.seen = 0
        self.refused = 0
        self.sync_sends = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60)
        self._server = ThreadingHTTPServer((host, free_port(host)), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _admit(self, body: bytes) -> tuple[int, bytes] | None:
        """The refusal to answer ``body`` with, or None to forward it."""
        with self._lock:
            self.seen += 1
            if self.refuse_every and self.seen % self.refuse_every == 0:
                self.refused += 1
                return 429, b'{"error": "too many requests"}'
        try:
            call = json.loads(body)
        except ValueError:
            return None
        if isinstance(call, dict) and call.get("method") == SYNC_SEND:
            with self._lock:
                self.sync_sends += 1
            error = {"code": -32601, "message": f"the method {SYNC_SEND} does not exist/is not available"}
            return 200, json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "error": error}).encode()
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = proxy._admit(body)
                if answer is None:
                    upstream = proxy._http.post(proxy.target, content=body, headers={"content-type": "application/json"})
                    answer = upstream.status_code, upstream.content
                status, content = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(content)

        return Handler
