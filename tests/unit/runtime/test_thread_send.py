"""A body written from a worker thread (``zgos.runtime.zerocopy._write_chunks``) over a real
socket pair: every byte in order to a reader, and a clean stop, never a hang or a traceback,
when the peer stops reading, reads too slowly for the deadline, leaves, or the chunks fail. And
the wait before it (``_flushed``) for what the event loop still holds ends when it is sent, or
after the stall limit."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from zgos.runtime.zerocopy import _flushed, _write_chunks

MIB = 2**20


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the server's non-blocking end, the client's end)"""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def read_all(sock: socket.socket, into: bytearray, size: int, pause_s: float = 0.0) -> threading.Thread:
    def run() -> None:
        try:
            while len(into) < size and (got := sock.recv(65536)):
                into.extend(got)
                time.sleep(pause_s)
        except OSError:  # the test is over and closed the socket
            return

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    return reader


def test_every_chunk_reaches_a_reading_peer_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    chunks = [bytes([i]) * (MIB // 3 + i) for i in range(24)]
    total = sum(map(len, chunks))
    got = bytearray()
    reader = read_all(theirs, got, total)
    assert _write_chunks(ours.fileno(), iter(chunks), 5.0, time.monotonic() + 60) == total
    reader.join(10)
    assert bytes(got) == b"".join(chunks)


def test_a_peer_that_stops_reading_is_let_go_after_the_stall(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    started = time.monotonic()
    written = _write_chunks(ours.fileno(), iter([b"x" * MIB] * 64), 0.2, started + 60)
    assert 0 < written < 64 * MIB  # what the socket's buffers took, then nothing for 0.2 s
    assert time.monotonic() - started < 10


def test_a_slow_reader_is_let_go_at_the_deadline(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    got = bytearray()
    read_all(theirs, got, 64 * MIB, pause_s=0.01)  # ~6 MB/s: reads, so never stalls
    started = time.monotonic()
    written = _write_chunks(ours.fileno(), iter([b"y" * MIB] * 64), 5.0, started + 0.5)
    assert 0 < written < 64 * MIB
    assert time.monotonic() - started < 6


def test_chunks_that_fail_end_the_body_after_the_bytes_before_them(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair

    def chunks() -> Iterator[bytes]:
        yield b"proven" * 100
        raise OSError("the node went away")

    assert _write_chunks(ours.fileno(), chunks(), 5.0, time.monotonic() + 60) == 600
    theirs.settimeout(5)
    assert theirs.recv(4096) == b"proven" * 100


def test_a_peer_that_left_ends_the_body(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.close()
    started = time.monotonic()
    assert _write_chunks(ours.fileno(), iter([b"z" * MIB] * 16), 5.0, started + 60) < 16 * MIB
    assert time.monotonic() - started < 5


def test_the_wait_for_the_loops_bytes_ends_when_they_are_sent_or_at_the_stall(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair

    async def run() -> tuple[bool, float, bool]:
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
        transport.write(b"h" * (16 * MIB))  # more than the socket takes: the loop keeps the rest
        started = time.monotonic()
        stalled = await _flushed(transport, 0.3)
        waited = time.monotonic() - started
        got = bytearray()
        read_all(theirs, got, 16 * MIB)
        drained = await _flushed(transport, 30.0)
        transport.abort()
        return stalled, waited, drained

    stalled, waited, drained = asyncio.run(run())
    assert not stalled and 0.3 <= waited < 5, waited
    assert drained
