"""Issue 20: segment frames are read straight off the socket, and a node that misbehaves at any
byte of that answer costs the client a clear error within its deadline, never a hang, a
traceback or more memory than one run of frames. Real sockets on 127.0.0.1, no chain."""

from __future__ import annotations

import logging
import time

import pytest

from tests.adversarial.hostile_http import Connection, HostileServer, Request, tarpit
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.logs import CONNECTION_LOGGER
from zgos.runtime.outbound import OutboundClient
from zgos.storage.framefetch import MAX_HEAD_BYTES
from zgos.storage.nodeclient import (
    CorruptData,
    NodeConnection,
    NodeMisbehaved,
    NodeUnavailable,
    StorageError,
)
from zgos.storage.spec.frames import (
    MAX_FRAMES_BODY_BYTES,
    encode_absent,
    encode_frame_header,
    encode_proof,
)
from zgos.storage.spec.merkle import Proof

PROOF = Proof((b"\x01" * 32, b"\x02" * 32), (True,))
SEGMENT = bytes(range(256)) * 1024  # 256 KiB


def frames(indexes: range, held: set[int] | None = None) -> bytes:
    """What an honest node sends for ``indexes`` (those in ``held``, default all, with data)."""
    body = b""
    for index in indexes:
        if held is not None and index not in held:
            body += encode_absent(index)
        else:
            body += encode_frame_header(index, encode_proof(PROOF), len(SEGMENT)) + SEGMENT
    return body


def answer(body: bytes, head: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def honest(request: Request, conn: Connection) -> None:
    query = dict(part.split("=") for part in request.path.split("?")[1].split("&"))
    first, count, step = int(query["first"]), int(query["count"]), int(query["step"])
    conn.send(answer(frames(range(first, first + count * step, step), held={0, 2, 4})))


def fetch(url: str, indexes: range, deadline_s: float = 10.0,
          policy: AddressPolicy = OPEN_POLICY) -> list[tuple[int, bytes | None, Proof | None]]:
    with OutboundClient(policy, deadline_s=deadline_s) as http:
        node = NodeConnection(url, http, fast=True)
        try:
            return [(f.index, None if f.data is None else bytes(f.data), f.proof) for f in node.get_segments(7, indexes)]
        finally:
            node.close()


def test_frames_come_off_the_socket_and_one_connection_serves_request_after_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with HostileServer(honest) as server, OutboundClient(OPEN_POLICY) as http:
        node = NodeConnection(server.url, http, fast=True)
        with caplog.at_level(logging.INFO, CONNECTION_LOGGER):
            first = list(node.get_segments(7, range(0, 3)))
            second = list(node.get_segments(7, range(2, 6, 2)))
        node.close()
    assert [(f.index, f.data, f.proof) for f in first] == [(0, SEGMENT, PROOF), (1, None, None), (2, SEGMENT, PROOF)]
    assert [f.index for f in second] == [2, 4] and all(f.data == SEGMENT for f in second)
    assert [r.path.split("?")[0] for r in server.requests] == ["/zgos/v1/segments/7"] * 2
    assert len([r for r in caplog.records if r.name == CONNECTION_LOGGER]) == 1, "the second request reused it"


def test_a_connection_the_node_closed_while_idle_is_replaced_without_an_error() -> None:
    def once_then_close(request: Request, conn: Connection) -> None:
        honest(request, conn)
        conn.sock.close()  # what a node's keep-alive timeout does to an idle connection

    with HostileServer(once_then_close) as server, OutboundClient(OPEN_POLICY) as http:
        node = NodeConnection(server.url, http, fast=True)
        assert [f.index for f in node.get_segments(7, range(0, 1))] == [0]
        time.sleep(0.1)
        assert [f.index for f in node.get_segments(7, range(2, 3))] == [2]
        node.close()
    assert len(server.requests) == 2


@pytest.mark.parametrize(("behaviour", "error", "message"), [
    (lambda r, c: c.send(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (2 * MAX_HEAD_BYTES)), CorruptData, "head is longer"),
    (lambda r, c: c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), StorageError,
     "no plain Content-Length"),
    (lambda r, c: c.send(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_FRAMES_BODY_BYTES + 1}\r\n\r\n".encode()),
     CorruptData, "longer than any run of frames"),
    (lambda r, c: c.send(answer(frames(range(0, 2))[:-10])), CorruptData, "past the answer's Content-Length"),
    (lambda r, c: c.send(answer(frames(range(0, 2)) + b"extra")), CorruptData, "bytes after the last frame"),
    (lambda r, c: c.send(answer(frames(range(1, 3)))), CorruptData, "expected segment 0, got 1"),
    (lambda r, c: c.send(b"SSH-2.0-OpenSSH\r\n\r\n"), CorruptData, "not an HTTP/1.1 answer"),
    (lambda r, c: c.send(b'HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{"error": "no such file!"}'),
     StorageError, "HTTP 404: no such file!"),
])
def test_a_malformed_answer_is_a_clear_error(behaviour: object, error: type[StorageError], message: str) -> None:
    with HostileServer(behaviour) as server, pytest.raises(error, match=message):  # type: ignore[arg-type]
        fetch(server.url, range(0, 2))


def test_a_node_that_stops_mid_frame_is_unavailable_and_a_trickling_one_is_cut_at_the_deadline() -> None:
    cut = frames(range(0, 2))

    def close_mid_frame(request: Request, conn: Connection) -> None:
        conn.send(answer(cut)[: len(cut) // 2])
        conn.sock.close()

    with HostileServer(close_mid_frame) as server, pytest.raises(NodeUnavailable, match="did not send segments 0"):
        fetch(server.url, range(0, 2))
    with HostileServer(tarpit(interval_s=0.2, claimed_length=len(cut))) as server:
        started = time.monotonic()
        with pytest.raises(NodeMisbehaved, match="within its 1 s deadline"):
            fetch(server.url, range(0, 2), deadline_s=1.0)
        assert time.monotonic() - started < 3.0


def test_an_address_the_policy_refuses_is_never_dialled() -> None:
    with HostileServer(honest) as server:
        closed = AddressPolicy(False, False, False)
        with pytest.raises(NodeMisbehaved, match="refused"):
            fetch(server.url, range(0, 1), policy=closed)
        assert server.requests == []
