"""HTTP front of the indexer: ``indexer_*`` JSON-RPC on ``POST /`` and the REST gateway.

REST (0G's gateway paths, storage.md §5.2):
* ``GET /file?root=0x..[&name=NAME]``: the file's bytes from the storage nodes, streamed as
  each segment's proof against ROOT checks out (``Content-Length`` exact; the first segment is
  proven before the status line, so an unservable file is still a 4xx/5xx; a failure later
  closes the connection short of ``Content-Length``, never sends an unproven byte).
* ``GET /file/info/{root}``: ``{root, tx, finalized, locations, pending}``.
* ``GET /node/status``: the usable nodes, the skipped ones with their reasons, scores and time to
  their next probe, and the snapshot's age (``ageSecs``).
Bad input is a 4xx with ``{"error": message}``; an unknown file is 404; nodes that cannot
serve a verified copy give 502 with the reason. JSON-RPC errors are JSON-RPC error objects.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from zgos.core.errors import ZgError
from zgos.storage.indexer.service import BadRequest, Indexer, NotEnoughNodes, NotFound
from zgos.storage.merkle import InvalidProof, parse_hash
from zgos.storage.node.rpc import INVALID_PARAMS, RpcError, RpcHandler

log = logging.getLogger(__name__)

DEFAULT_PORT = 12345
MAX_RPC_BODY_BYTES = 1024 * 1024
STREAM_CHUNK_BYTES = 1024 * 1024
INFO_PATH = re.compile(r"^/file/info/([^/]+)$")


def _root_param(value: Any) -> bytes:
    try:
        return parse_hash(value, "root")
    except InvalidProof as exc:
        raise BadRequest(f"{exc.message} (a root is 0x followed by 64 hex digits)") from None


def _rpc_root(params: list[Any]) -> bytes:
    if not params:
        raise RpcError(INVALID_PARAMS, "missing parameter 0: root")
    try:
        return _root_param(params[0])
    except BadRequest as exc:
        raise RpcError(INVALID_PARAMS, exc.message) from None


def _rpc_replicas(params: list[Any]) -> int:
    value = params[0] if params else 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(INVALID_PARAMS, "replicas must be an integer")
    return value


class IndexerRpc(RpcHandler):
    """The storage node's JSON-RPC dispatch (errors, batches) with the indexer's methods."""

    def __init__(self, indexer: Indexer) -> None:  # no node behind the indexer: own methods only
        self.indexer = indexer
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "indexer_getShardedNodes": lambda p: indexer.sharded_nodes(),
            "indexer_getFileLocations": lambda p: [n.to_json() for n in indexer.file_locations(_rpc_root(p))],
            "indexer_selectNodes": lambda p: [n.to_json() for n in indexer.select_nodes(_rpc_replicas(p))],
            "indexer_getFileInfo": lambda p: indexer.file_info(_rpc_root(p)),
        }


class IndexerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], indexer: Indexer, scratch: Path) -> None:
        self.indexer = indexer
        self.rpc = IndexerRpc(indexer)
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        super().__init__(address, GatewayHandler)

    def shutdown_soon(self) -> None:
        threading.Thread(target=self.shutdown, daemon=True).start()


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: IndexerServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/":
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
            return
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_RPC_BODY_BYTES:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, f"Content-Length must be 0..{MAX_RPC_BODY_BYTES}")
            return
        answer = self.server.rpc.handle(self.rfile.read(length), self.client_address[0])
        if answer is None:
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _unsupported(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _unsupported

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        indexer = self.server.indexer
        try:
            if url.path == "/file":
                self._file(query)
            elif match := INFO_PATH.match(url.path):
                self._json(HTTPStatus.OK, indexer.file_info(_root_param(match[1])))
            elif url.path == "/node/status":
                snapshot = indexer.directory.current()
                self._json(HTTPStatus.OK, {"nodes": [n.to_json() for n in snapshot.nodes],
                                           "skipped": [s.to_json() for s in snapshot.skipped],
                                           "refreshedAt": int(snapshot.refreshed_at),
                                           "ageSecs": round(time.time() - snapshot.refreshed_at, 3)})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {url.path}")
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, exc.message)
        except NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, exc.message)
        except NotEnoughNodes as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, exc.message)
        except ZgError as exc:
            self._error(HTTPStatus.BAD_GATEWAY, exc.message)

    def _file(self, query: dict[str, list[str]]) -> None:
        roots = query.get("root", [])
        if len(roots) != 1:
            raise BadRequest("give exactly one root: GET /file?root=0x...")
        root = _root_param(roots[0])
        name = query.get("name", ["0x" + root.hex()])[0]
        with tempfile.TemporaryDirectory(dir=self.server.scratch) as scratch:
            size, chunks = self.server.indexer.read(root, Path(scratch))
            try:
                first = next(chunks, b"")
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
                self.send_header("X-Zg-Root", "0x" + root.hex())
                self.end_headers()
                sent = 0
                try:
                    for chunk in itertools.chain([first], chunks):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (ZgError, OSError) as exc:  # headers are out: all we can do is stop short
                    log.warning("GET /file 0x%s stopped after %d of %d bytes: %s", root.hex(), sent, size, exc)
                    self.close_connection = True
            finally:
                chunks.close()  # stops the fetches still in flight
