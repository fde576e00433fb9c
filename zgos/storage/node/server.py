"""HTTP front of a storage node: JSON-RPC on ``POST /`` and a raw-bytes fast path.

Fast path (for zgos's own client; same validation as the RPC, no base64, no JSON body):
* ``PUT /zgos/v1/segment/{txSeq}/{index}``: body = segment bytes; headers ``X-Zg-Root``,
  ``X-Zg-File-Size``, ``X-Zg-Proof`` (the proof as JSON). 200 ``{"stored": bool}``; a rejected
  segment is 400 ``{"error": reason}``; an unknown file 404.
* ``GET /zgos/v1/segment/{txSeq}/{index}``: body = segment bytes; ``X-Zg-Proof`` header.
* ``GET /zgos/v1/file/{txSeq}``: ``{"segments": [held indexes], "finalized": bool}`` (resume).
Bodies above ``MAX_BODY_BYTES`` get 413; every error is a 4xx with a JSON message, never a 5xx.
A threaded server: segment hashing and SQLite I/O run in parallel across requests.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from zgos.core.errors import ZgError
from zgos.storage.merkle import InvalidProof, Proof, parse_hash
from zgos.storage.node.node import AlreadyFinalized, DataUnavailable, FileNotFound, StorageNode
from zgos.storage.node.rpc import RpcHandler
from zgos.storage.segment import InvalidSegment, SegmentWithProof

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 100 * 1024 * 1024
SEGMENT_PATH = re.compile(r"^/zgos/v1/segment/(\d{1,19})/(\d{1,19})$")
FILE_PATH = re.compile(r"^/zgos/v1/file/(\d{1,19})$")


class NodeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], node: StorageNode) -> None:
        self.node = node
        self.rpc = RpcHandler(node, shutdown=self.shutdown_soon)
        super().__init__(address, Handler)

    def shutdown_soon(self) -> None:
        threading.Thread(target=self.shutdown, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: NodeServer

    def setup(self) -> None:
        super().setup()
        # Headers and body are written separately: without NODELAY, Nagle + delayed ACK
        # add ~40 ms to every small response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # --- helpers -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode())

    def _body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
            return None
        return self.rfile.read(length)

    # --- JSON-RPC ------------------------------------------------------------------------

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        answer = self.server.rpc.handle(body, self.client_address[0])
        if answer is None:
            self._send(HTTPStatus.NO_CONTENT, b"")
        else:
            self._send(HTTPStatus.OK, answer)

    def _unsupported(self) -> None:
        self.close_connection = True
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported"})

    do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _unsupported

    # --- fast path -----------------------------------------------------------------------

    def do_PUT(self) -> None:
        match = SEGMENT_PATH.match(self.path)
        body = self._body()
        if body is None:
            return
        if match is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: PUT {self.path}"})
            return
        try:
            seq, index = int(match[1]), int(match[2])
            root = parse_hash(self.headers.get("X-Zg-Root"), "X-Zg-Root")
            size_text = self.headers.get("X-Zg-File-Size", "")
            if not size_text.isdigit():
                raise InvalidSegment("X-Zg-File-Size must be a non-negative integer")
            proof = Proof.from_json(json.loads(self.headers.get("X-Zg-Proof", "null")))
            segment = SegmentWithProof(root, body, index, proof, int(size_text))
            stored = self.server.node.upload_segment(segment, seq)
        except (InvalidSegment, InvalidProof, AlreadyFinalized, ValueError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except FileNotFound as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
            return
        except ZgError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"stored": stored})

    def do_GET(self) -> None:
        node = self.server.node
        try:
            if match := SEGMENT_PATH.match(self.path):
                record = node.tx_by_seq(int(match[1]))
                segment = node.segment_with_proof(record, int(match[2]))
                self._send(HTTPStatus.OK, segment.data, "application/octet-stream",
                           {"X-Zg-Proof": json.dumps(segment.proof.to_json(), separators=(",", ":")),
                            "X-Zg-Root": "0x" + segment.root.hex()})
            elif match := FILE_PATH.match(self.path):
                record = node.tx_by_seq(int(match[1]))
                self._json(HTTPStatus.OK, {"segments": node.store.segment_indexes(record.entry.seq),
                                           "finalized": record.finalized, "size": record.entry.size,
                                           "root": "0x" + record.entry.data_root.hex()})
            elif self.path in ("/", "/health"):
                self._json(HTTPStatus.OK, node.status())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})
        except (FileNotFound, DataUnavailable) as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except ZgError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
