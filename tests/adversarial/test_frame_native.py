"""Issue 20: frames a download reads natively (``ProvenWrite``, ``_treehash.receive_frames``).

Every segment native code takes is proven against the file's root before it is written to the
output, at its own place; a frame it cannot prove (corrupt data or proof, absent, the file's
last) comes back to the Python path unwritten, and whatever a node does wrong mid-run is the same
clear error as without native code. Real sockets on 127.0.0.1, real proofs, no chain."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.adversarial.hostile_http import Connection, HostileServer, Request
from zgos.runtime.addresses import OPEN_POLICY
from zgos.runtime.outbound import OutboundClient
from zgos.storage import fasthash
from zgos.storage.framefetch import Frame, OutputFailed, ProvenWrite
from zgos.storage.hasher import build_file_tree
from zgos.storage.nodeclient import (
    CorruptData,
    NodeConnection,
    NodeMisbehaved,
    NodeUnavailable,
    StorageError,
)
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.frames import encode_absent, encode_frame_header, encode_proof
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, BYTES_PER_SEGMENT

pytestmark = pytest.mark.skipif(fasthash.native is None, reason="the native extension is not built")

SEGMENTS = 8
SIZE = (SEGMENTS - 1) * BYTES_PER_SEGMENT + 1000  # the last segment is partial: Python's to decide


@pytest.fixture(scope="module")
def file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, FileTree]:
    path = tmp_path_factory.mktemp("native") / "file.bin"
    path.write_bytes(random.Random(20).randbytes(SIZE))
    return path.read_bytes(), build_file_tree(path)


def segment(content: bytes, index: int) -> bytes:
    """What a node stores and sends for segment ``index``: the last one padded to whole sectors."""
    data = content[index * BYTES_PER_SEGMENT : (index + 1) * BYTES_PER_SEGMENT]
    return data.ljust(-(-len(data) // BYTES_PER_SECTOR) * BYTES_PER_SECTOR, b"\0")


def frame(content: bytes, tree: FileTree, index: int, tamper: str = "") -> bytes:
    data, proof = segment(content, index), encode_proof(tree.proof(index))
    if tamper == "data":
        data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    elif tamper == "sibling":  # the second lemma item: only folding the path finds it
        proof = proof[:2 + 32] + bytes([proof[2 + 32] ^ 1]) + proof[2 + 33 :]
    elif tamper == "proof_length":  # one lemma item more in the header than in the proof
        proof = bytes([proof[0] + 1]) + proof[1:]
    elif tamper == "absent":
        return encode_absent(index)
    return encode_frame_header(index, proof, len(data)) + data


def frames_server(body_of: Callable[[range], bytes], extra: bytes = b"",
                  length_delta: int = 0) -> Callable[[Request, Connection], None]:
    """A node that answers a run of frames with ``body_of(indexes)`` and ``extra`` bytes after
    them, in a Content-Length ``length_delta`` off."""

    def respond(request: Request, conn: Connection) -> None:
        query = dict(part.split("=") for part in request.path.split("?")[1].split("&"))
        first, count, step = int(query["first"]), int(query["count"]), int(query["step"])
        body = body_of(range(first, first + count * step, step)) + extra
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + length_delta}\r\n\r\n".encode() + body)

    return respond


@contextmanager
def output(tmp_path: Path, writable: bool = True) -> Iterator[int]:
    path = tmp_path / "out.part"
    path.write_bytes(b"\0" * SIZE)
    handle = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    try:
        yield handle
    finally:
        os.close(handle)


def receive(url: str, handle: int, tree: FileTree, deadline_s: float = 10.0) -> list[Frame]:
    with OutboundClient(OPEN_POLICY, deadline_s=deadline_s) as http:
        node = NodeConnection(url, http, fast=True)
        try:
            return list(node.get_segments(7, range(SEGMENTS), ProvenWrite(tree.root, SIZE, handle)))
        finally:
            node.close()


def test_proven_segments_are_written_in_place_and_any_other_comes_back_unwritten(
    tmp_path: Path, file: tuple[bytes, FileTree],
) -> None:
    content, tree = file
    tampered = {2: "data", 3: "absent", 5: "sibling"}
    body = frames_server(lambda indexes: b"".join(frame(content, tree, i, tampered.get(i, "")) for i in indexes))
    with HostileServer(body) as server, output(tmp_path) as handle:
        frames = receive(server.url, handle, tree)
        written = os.pread(handle, SIZE, 0)
    assert [f.index for f in frames] == list(range(SEGMENTS))
    by_index = {f.index: f for f in frames}
    assert {1, 4, 6} <= {f.index for f in frames if f.proven}, "native code took the honest middle segments"
    assert not {2, 3, 5, 7} & {f.index for f in frames if f.proven}
    assert by_index[2].data == frame(content, tree, 2, "data")[-BYTES_PER_SEGMENT:], "returned whole, for the reference"
    assert by_index[2].proof == tree.proof(2)
    assert by_index[5].proof != tree.proof(5) and by_index[5].data == segment(content, 5)
    assert (by_index[3].data, by_index[3].proof) == (None, None)
    assert by_index[7].data == segment(content, 7) and by_index[7].proof == tree.proof(7), "the last: Python's"
    for index in range(SEGMENTS):
        region = slice(index * BYTES_PER_SEGMENT, min(SIZE, (index + 1) * BYTES_PER_SEGMENT))
        expected = content[region] if by_index[index].proven else bytes(region.stop - region.start)
        assert written[region] == expected, f"segment {index}: only proven bytes reach the file"


def test_a_frame_that_breaks_the_framing_mid_run_is_the_same_error_as_without_native_code(
    tmp_path: Path, file: tuple[bytes, FileTree],
) -> None:
    content, tree = file

    def honest(indexes: range) -> bytes:
        return b"".join(frame(content, tree, i) for i in indexes)

    def skips_three(indexes: range) -> bytes:
        return b"".join(frame(content, tree, i) for i in indexes if i != 3)

    def bad_proof_length(indexes: range) -> bytes:
        return b"".join(frame(content, tree, i, "proof_length" if i == 4 else "") for i in indexes)

    cases: list[tuple[Callable[[Request, Connection], None], type[StorageError], str]] = [
        (frames_server(skips_three), CorruptData, "expected segment 3, got 4"),
        (frames_server(bad_proof_length), CorruptData, "length does not match its header"),
        (frames_server(honest, length_delta=-300_000), CorruptData, "past the answer's Content-Length"),
        (frames_server(honest, extra=b"more"), CorruptData, "bytes after the last frame"),
    ]
    for behaviour, error, message in cases:
        with HostileServer(behaviour) as server, output(tmp_path) as handle, pytest.raises(error, match=message):
            receive(server.url, handle, tree)


def test_a_node_that_stops_or_trickles_mid_run_is_cut_off_without_a_hang(
    tmp_path: Path, file: tuple[bytes, FileTree],
) -> None:
    content, tree = file
    body = b"".join(frame(content, tree, i) for i in range(SEGMENTS))

    def stops(request: Request, conn: Connection) -> None:
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
        conn.sock.close()

    def trickles(request: Request, conn: Connection) -> None:
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[: 3 * BYTES_PER_SEGMENT])
        at = 3 * BYTES_PER_SEGMENT
        while conn.send(body[at : at + 1]):
            at += 1
            time.sleep(0.2)

    with HostileServer(stops) as server, output(tmp_path) as handle, \
            pytest.raises(NodeUnavailable, match="did not send segments 0"):
        receive(server.url, handle, tree)
    with HostileServer(trickles) as server, output(tmp_path) as handle:
        started = time.monotonic()
        with pytest.raises(NodeMisbehaved, match="within its 1 s deadline"):
            receive(server.url, handle, tree, deadline_s=1.0)
        assert time.monotonic() - started < 3.0


def test_an_output_that_cannot_be_written_fails_the_write_not_the_node(
    tmp_path: Path, file: tuple[bytes, FileTree],
) -> None:
    content, tree = file
    body = frames_server(lambda indexes: b"".join(frame(content, tree, i) for i in indexes))
    with HostileServer(body) as server, output(tmp_path, writable=False) as handle, \
            pytest.raises(OutputFailed, match="writing a verified segment failed: Bad file descriptor"):
        receive(server.url, handle, tree)


def test_without_an_output_file_proven_frames_come_back_with_their_data(
    tmp_path: Path, file: tuple[bytes, FileTree],
) -> None:
    content, tree = file
    tampered = {2: "data", 4: "absent"}
    body = frames_server(lambda indexes: b"".join(frame(content, tree, i, tampered.get(i, "")) for i in indexes))
    with HostileServer(body) as server, OutboundClient(OPEN_POLICY) as http:
        node = NodeConnection(server.url, http, fast=True)
        native = list(node.get_segments(7, range(SEGMENTS), ProvenWrite(tree.root, SIZE)))
        unchecked = list(node.get_segments(7, range(SEGMENTS)))
        node.close()
    assert {1, 3, 5, 6} <= {f.index for f in native if f.proven}
    assert not {2, 4, 7} & {f.index for f in native if f.proven}
    for got in native:
        if got.index == 4:
            assert (got.data, got.proof) == (None, None)
        elif got.index == 2:
            assert got.data == frame(content, tree, 2, "data")[-BYTES_PER_SEGMENT:] and got.proof == tree.proof(2)
        else:
            assert got.data == segment(content, got.index)
            assert got.proof == (None if got.proven else tree.proof(got.index))
    assert not any(f.proven for f in unchecked), "without a ProvenWrite nothing is checked on the way"
    assert [f.data for f in unchecked if f.index not in tampered] == [segment(content, i) for i in (0, 1, 3, 5, 6, 7)]


def test_without_an_output_file_the_first_frame_comes_back_before_the_rest_arrive(
    file: tuple[bytes, FileTree],
) -> None:
    """A stream passes on its first segment once it is proven, not once the whole run came (a
    gateway's first byte); the rest come a few frames at a time, all proven."""
    content, tree = file
    body = b"".join(frame(content, tree, i) for i in range(SEGMENTS))
    first = len(frame(content, tree, 0))
    pause_s = 2.0

    def pauses(request: Request, conn: Connection) -> None:
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.1)  # the head alone, as a node sends it: the frames are native code's to read
        conn.send(body[:first])
        time.sleep(pause_s)
        conn.send(body[first:])

    with HostileServer(pauses) as server, OutboundClient(OPEN_POLICY) as http:
        node = NodeConnection(server.url, http, fast=True)
        started = time.monotonic()
        frames = node.get_segments(7, range(SEGMENTS), ProvenWrite(tree.root, SIZE))
        head = next(frames)
        assert time.monotonic() - started < pause_s / 2, "the first frame did not wait for the others"
        assert head.proven and head.index == 0 and head.data == segment(content, 0)
        rest = list(frames)
        node.close()
    assert [f.index for f in rest] == list(range(1, SEGMENTS))
    assert all(f.proven for f in rest[:-1]) and not rest[-1].proven, "the partial last segment is Python's"
    assert [f.data for f in rest] == [segment(content, i) for i in range(1, SEGMENTS)]
