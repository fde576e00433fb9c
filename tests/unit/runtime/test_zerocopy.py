"""The hardened server sends file regions without copying them (``zgos.runtime.zerocopy``): the
bytes arrive exact under a Content-Length and under chunking, a client that leaves mid-send
costs the server nothing, and the connection serves the next request. A real uvicorn server on
127.0.0.1 and a real file."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zgos.runtime.edge import EdgePolicy
from zgos.runtime.serve import EdgeServer, bind_listener
from zgos.runtime.zerocopy import ZERO_COPY_SEND

REGION_OFFSET = 100_000
REGION_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zerocopy") / "data.bin"
    path.write_bytes(os.urandom(REGION_OFFSET + REGION_BYTES + 5000))
    return path


@pytest.fixture(scope="module")
def server(data_file: Path) -> Iterator[str]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen["extensions"] = scope.get("extensions", {})
        sized, headed = scope["path"].startswith("/sized"), scope["path"].endswith("-headed")
        headers = [(b"content-length", str(REGION_BYTES + 5).encode())] if sized else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if not headed:
            await send({"type": "http.response.body", "body": b"head:", "more_body": True})
        with data_file.open("rb") as file:  # with "head", the bytes before the region come in its message
            await send({"type": ZERO_COPY_SEND, "file": file, "offset": REGION_OFFSET, "count": REGION_BYTES,
                        "more_body": False, **({"head": b"head:"} if headed else {})})

    running = EdgeServer(app, bind_listener("127.0.0.1", 0), EdgePolicy())
    running.start()
    yield running.url
    running.stop()
    assert ZERO_COPY_SEND in seen["extensions"]


@pytest.mark.parametrize("path", ["/sized", "/chunked", "/sized-headed", "/chunked-headed"])
def test_a_file_region_arrives_exact_under_content_length_and_chunking(server: str, data_file: Path, path: str) -> None:
    region = data_file.read_bytes()[REGION_OFFSET : REGION_OFFSET + REGION_BYTES]
    with httpx.Client() as http:
        for _ in range(2):  # the same connection, answer after answer
            response = http.get(server + path)
            assert response.status_code == 200 and response.content == b"head:" + region
            framing = response.headers.get("content-length") or response.headers.get("transfer-encoding")
            assert framing == (str(REGION_BYTES + 5) if path.startswith("/sized") else "chunked")
            head = http.head(server + path)
            assert head.status_code == 200 and head.content == b"", "a HEAD answer carries no region"


def test_a_client_that_leaves_mid_send_does_not_disturb_the_server(server: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    host, port = server.removeprefix("http://").split(":")
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"GET /sized HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            sock.recv(1000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    assert len(httpx.get(server + "/sized").content) == REGION_BYTES + 5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback for a client that left"
