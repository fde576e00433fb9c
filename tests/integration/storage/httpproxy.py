"""A real HTTP server in front of a storage node: it forwards every request, can rewrite the
node's JSON-RPC answers (a lying node) or flip a byte of the segments it streams as frames (a
node whose disk rots), and counts what it was asked (what a client fetched)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from zgos.runtime.netutil import free_port

Rewrite = Callable[[str, Any], Any]  # (JSON-RPC method, result) -> the result to answer
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class StorageNodeProxy:
    """``url`` forwards to ``target``; ``rewrite`` changes JSON-RPC results on the way back;
    with ``rot_frames``, the last byte of every run of frames (its last segment's data) is flipped."""

    def __init__(self, target: str, rewrite: Rewrite | None = None, rot_frames: bool = False,
                 missing: tuple[str, ...] = ()) -> None:
        self.target = target.rstrip("/")
        self.rewrite = rewrite
        self.rot_frames = rot_frames
        self.missing = missing  # path prefixes answered 404, as a node without those endpoints
        self.requests: list[tuple[str, str]] = []  # (HTTP method, path or JSON-RPC method)
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def segment_requests(self) -> list[tuple[str, str]]:
        """Requests for file bytes: fast-path segment and frame GETs and JSON-RPC segment downloads."""
        with self._lock:
            return [(verb, what) for verb, what in self.requests
                    if (verb == "GET" and what.startswith(("/zgos/v1/segment/", "/zgos/v1/segments/")))
                    or "downloadSegment" in what]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = None
                if self.command == "POST":
                    try:
                        method = json.loads(body).get("method")
                    except (ValueError, AttributeError):
                        method = None
                with proxy._lock:
                    proxy.requests.append((self.command, method or self.path))
                if self.path.startswith(proxy.missing):
                    self.send_error(404)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = proxy._http.request(self.command, proxy.target + self.path, content=body, headers=headers)
                content = answer.content
                if proxy.rot_frames and self.path.startswith("/zgos/v1/segments/") and answer.status_code == 200 and content:
                    content = content[:-1] + bytes([content[-1] ^ 1])
                if method and proxy.rewrite is not None and answer.status_code == 200:
                    reply = answer.json()
                    if isinstance(reply, dict) and "result" in reply:
                        reply["result"] = proxy.rewrite(method, reply["result"])
                        content = json.dumps(reply).encode()
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _forward

        return Handler


def lie_about_size(size: int) -> Rewrite:
    """A rewrite claiming ``size`` bytes for every file the node describes."""

    def rewrite(method: str, result: Any) -> Any:
        if method in ("zgs_getFileInfo", "zgs_getFileInfoByTxSeq") and isinstance(result, dict):
            result["tx"]["size"] = size
        return result

    return rewrite
