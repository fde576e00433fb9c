"""Segment frames read off the socket (issue 20): zgos's client side of ``GET /zgos/v1/segments``.

A node answers that request with an exact ``Content-Length`` (``zgos.storage.node.framesend``),
so its body is read with fixed-size reads: each segment's bytes go from the kernel straight into
the buffer the native hasher then reads (``recv_into``), with no HTTP library copying them in
between, and the connection is kept for the next request to the same node. The guards of every
outbound call still hold (``zgos.runtime.outbound``): the connection is made by
``GuardedBackend`` (the address policy, the checked address, the connection log), each request
ends by its deadline, the answer's head is capped at ``MAX_HEAD_BYTES``, and its body must be
exactly what its frames add up to, at most ``MAX_FRAMES_BODY_BYTES``.

Given a ``ProvenWrite``, the frames are read by native code (``_treehash.receive_frames``,
without the GIL): each segment it proves against the file's root goes from the socket into a
buffer, and from there to its place in the output file (or out as bytes), and is reported as
proven. The first frame it cannot prove (absent, malformed, the file's padded last segment, a
proof that fails) comes back here whole or as its header, and is read and returned as without
one: the caller checks it with the reference and decides.

Only plain ``http://`` nodes are read this way; ``FramesRefused`` tells the caller to fetch the
segments some other way (one per request, over its HTTP client).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Generator
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore

from zgos.core.errors import ZgError
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.outbound import GuardedBackend
from zgos.storage import fasthash
from zgos.storage.spec.flow import compute_proof_segment_count, compute_segment_count
from zgos.storage.spec.frames import (
    FRAME_HEADER,
    MAX_FRAMES_BODY_BYTES,
    MAX_PROOF_BYTES,
    InvalidFrame,
    decode_frame_header,
    decode_proof,
)
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, Proof
from zgos.storage.spec.segment import MAX_FILE_SIZE

MAX_HEAD_BYTES = 16 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_IDLE_CONNECTIONS = 16
RECV_BYTES = 64 * 1024  # what one read of the head (and the bytes after it) asks for
RUN_HEADER, RUN_FRAME, RUN_PAST_END = 1, 2, 3  # how _treehash.receive_frames stopped short
# Frames one native call receives as bytes, for a stream to pass on (the first call takes one
# alone, so the first byte need not wait for more); into a file a call takes the whole run.
BYTES_RUN_FRAMES = 8


@dataclass(frozen=True, slots=True)
class Frame:
    """Segment ``index`` as the node sent it (unchecked): its data and proof, both None when
    the node does not hold it; or ``proven`` by native code (no proof), its data then None if
    it was written to the ``ProvenWrite``'s file."""

    index: int
    data: bytes | None
    proof: Proof | None
    proven: bool = False


@dataclass(frozen=True)
class ProvenWrite:
    """Segments of the file ``root`` of ``size`` bytes that native code may prove, and where
    they go: segment i at byte ``i * BYTES_PER_SEGMENT`` of the open file ``out``, or back to the
    caller as bytes when there is no ``out``."""

    root: bytes
    size: int
    out: int | None = None


class FramesRefused(ZgError):
    """The node answered, but not with frames (its message), or cannot be read this way."""


class OutputFailed(ZgError):
    """Writing a proven segment to the ``ProvenWrite``'s file failed: the node is not to blame."""


class _Deadline:
    """When one request must be done by; ``TimeoutError`` once it has passed."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the node did not send the frames in time")
        return remaining


class _Answer:
    """The body of one answer on ``sock``: exact reads, bytes the head's read took first."""

    def __init__(self, sock: socket.socket, early: bytes, length: int, deadline: _Deadline,
                 scratch: bytearray) -> None:
        self.sock = sock
        self.early = memoryview(early)
        self.left = length
        self.deadline = deadline
        self.scratch = scratch

    def take(self, length: int) -> bytes:
        """The next ``length`` bytes (at most a segment), read into the thread's warm buffer and
        copied out: a fresh buffer per segment costs a page fault per 4 KiB, 20x the copy."""
        view = memoryview(self.scratch)[:length]
        self.read_into(view)
        return bytes(view)

    def read_into(self, view: memoryview) -> None:
        if len(view) > self.left:
            raise InvalidFrame(f"the frames run {len(view) - self.left} bytes past the answer's Content-Length")
        self.left -= len(view)
        done = min(len(self.early), len(view))
        view[:done] = self.early[:done]
        self.early = self.early[done:]
        while done < len(view):
            self.sock.settimeout(self.deadline.left())
            received = self.sock.recv_into(view[done:])
            if not received:
                raise ConnectionError(f"the connection closed {len(view) - done} bytes into a frame")
            done += received


class FrameChannel:
    """``GET /zgos/v1/segments`` of one node over connections kept open between requests."""

    def __init__(self, url: str, policy: AddressPolicy, deadline_s: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.plain_http = parts.scheme == "http" and bool(self.host)
        self.backend = GuardedBackend(policy)
        self.deadline_s = deadline_s
        self._idle: list[tuple[httpcore.NetworkStream, socket.socket]] = []
        self._lock = threading.Lock()
        self._buffers = threading.local()  # each thread's receive buffer, reused request after request

    def frames(self, seq: int, indexes: range, into: ProvenWrite | None = None) -> Generator[Frame, None, None]:
        """Segments ``indexes`` of tx ``seq`` with their proofs, as the node sends them
        (unchecked), or, given ``into``, proven natively (and written to its file if it has one).
        ``FramesRefused`` for an answer that is not frames, ``InvalidFrame`` for malformed ones,
        ``OSError`` when the transfer fails, ``OutputFailed`` when the write does."""
        if not self.plain_http:
            raise FramesRefused(f"only http:// nodes stream frames to this client, not {self.host}")
        target = (f"{self.prefix}/zgos/v1/segments/{seq}?first={indexes.start}&count={len(indexes)}"
                  f"&step={indexes.step}")
        deadline = _Deadline(self.deadline_s)
        connection, answer, keep = self._request(target, deadline)
        native = into is not None and fasthash.native is not None and 0 < into.size <= MAX_FILE_SIZE
        kept = False
        try:
            position = 0
            while position < len(indexes):
                index, pending = indexes[position], None
                if native and not answer.early:
                    assert into is not None
                    proven, pending = _receive_proven(answer, _run(indexes, position, into), into, deadline)
                    yield from proven
                    position += len(proven)
                    if pending is None:
                        continue
                    index = indexes[position]
                position += 1
                header = decode_frame_header(pending.header if pending else answer.take(FRAME_HEADER.size), index)
                if header.absent:
                    yield Frame(index, None, None)
                elif pending and pending.data is not None:
                    yield Frame(index, pending.data, decode_proof(pending.proof))
                else:
                    proof = decode_proof(answer.take(header.proof_bytes))
                    yield Frame(index, answer.take(header.data_bytes), proof)
            if answer.left or answer.early:
                raise InvalidFrame("bytes after the last frame")
            kept = keep and self._keep(connection)
        finally:
            if not kept:
                connection[0].close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for stream, _ in idle:
            stream.close()

    # --- one request ---------------------------------------------------------------------

    def _request(self, target: str,
                 deadline: _Deadline) -> tuple[tuple[httpcore.NetworkStream, socket.socket], _Answer, bool]:
        """Send the request on an idle connection (a fresh one if the idle one turns out closed)
        and read the answer's head: the connection, the body, whether it may be kept."""
        while True:
            connection, reused = self._connection(deadline)
            try:
                return (connection, *self._exchange(connection[1], target, deadline))
            except ConnectionError:
                connection[0].close()
                if not reused:  # an idle connection the node closed meanwhile: once more, fresh
                    raise
            except BaseException:
                connection[0].close()
                raise

    def _connection(self, deadline: _Deadline) -> tuple[tuple[httpcore.NetworkStream, socket.socket], bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        stream = self.backend.connect_tcp(self.host, self.port, timeout=deadline.left())
        return (stream, stream.get_extra_info("socket")), False

    def _keep(self, connection: tuple[httpcore.NetworkStream, socket.socket]) -> bool:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(connection)
                return True
        return False

    def _exchange(self, sock: socket.socket, target: str, deadline: _Deadline) -> tuple[_Answer, bool]:
        request = (f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"Accept-Encoding: identity\r\nUser-Agent: zgos\r\n\r\n")
        sock.settimeout(deadline.left())
        sock.sendall(request.encode("ascii"))
        status, headers, early = _read_head(sock, deadline)
        length = headers.get("content-length", "")
        if not length.isdigit() or "transfer-encoding" in headers:
            raise FramesRefused("the node's answer has no plain Content-Length (a node older than this client?)")
        if (scratch := getattr(self._buffers, "scratch", None)) is None:
            scratch = self._buffers.scratch = bytearray(BYTES_PER_SEGMENT)
        answer = _Answer(sock, early, int(length), deadline, scratch)
        if status != 200:
            if answer.left > MAX_ERROR_BODY_BYTES:
                raise FramesRefused(f"HTTP {status} with a {answer.left}-byte body")
            raise FramesRefused(f"HTTP {status}: {_error_message(answer.take(answer.left))}")
        if answer.left > MAX_FRAMES_BODY_BYTES:
            raise InvalidFrame(f"an answer of {answer.left} bytes is longer than any run of frames")
        return answer, headers.get("connection", "").lower() != "close"


def _run(indexes: range, position: int, into: ProvenWrite) -> range:
    """The frames of ``indexes`` one native call takes from ``position`` on (see
    ``BYTES_RUN_FRAMES``)."""
    if into.out is not None:
        return indexes[position:]
    return indexes[position:position + BYTES_RUN_FRAMES if position else 1]


@dataclass(frozen=True)
class _Unproven:
    """The frame native code stopped at: its header, and its proof and data if it read them."""

    header: bytes
    proof: bytes
    data: bytes | None


def _receive_proven(answer: _Answer, indexes: range, into: ProvenWrite,
                    deadline: _Deadline) -> tuple[list[Frame], _Unproven | None]:
    """The first frames of ``indexes``, received and proven natively (written to ``into.out``,
    else each received straight into its own bytes), and the frame native code stopped at, if
    it did."""
    assert fasthash.native is not None
    answer.sock.settimeout(deadline.left())  # the descriptor is non-blocking: native code polls
    done, answer.left, status, header, proof, write_errno, segments = fasthash.native.receive_frames(
        answer.sock.fileno(), -1 if into.out is None else into.out, indexes.start, indexes.step, len(indexes),
        answer.left, deadline.left(), compute_proof_segment_count(into.size), compute_segment_count(into.size),
        into.root, MAX_PROOF_BYTES, answer.scratch)
    if write_errno:
        raise OutputFailed(f"writing a verified segment failed: {os.strerror(write_errno)}")
    if status == RUN_PAST_END:
        raise InvalidFrame("the frames run past the answer's Content-Length")
    proven = [Frame(index, segments[k] if into.out is None else None, None, proven=True)
              for k, index in enumerate(indexes[:done])]
    if status not in (RUN_HEADER, RUN_FRAME):
        return proven, None
    return proven, _Unproven(header, proof, segments[-1] if status == RUN_FRAME else None)


def _read_head(sock: socket.socket, deadline: _Deadline) -> tuple[int, dict[str, str], bytes]:
    """The status and headers of the answer on ``sock``, and the body bytes read with them."""
    received = bytearray()
    while (end := received.find(b"\r\n\r\n")) < 0:
        if len(received) > MAX_HEAD_BYTES:
            raise InvalidFrame(f"the answer's head is longer than {MAX_HEAD_BYTES} bytes")
        sock.settimeout(deadline.left())
        chunk = sock.recv(RECV_BYTES)
        if not chunk:
            raise ConnectionError("the connection closed before the answer's head")
        received += chunk
    lines = received[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise InvalidFrame(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise InvalidFrame(f"a malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(code), headers, bytes(received[end + 4 :])


def _error_message(body: bytes) -> str:
    with suppress(ValueError, AttributeError):
        return str(json.loads(body).get("error"))[:500]
    return body[:200].decode("utf-8", "replace")
