"""A frames answer (``zgos.storage.node.framesend``) as an ASGI app: its Content-Length is the
sum of its frames; a segment file's bytes go as zero-copy regions when the server offers the
extension and as the same bytes read from the file when it does not. A real file, no server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from zgos.runtime.zerocopy import ZERO_COPY_SEND
from zgos.storage.node.framesend import FileRegion, OutgoingFrames
from zgos.storage.spec.frames import encode_absent, encode_frame_header

SEGMENT = 256 * 1024


def frames_of(path: Path) -> OutgoingFrames:
    """Segment 1 held in its row, segment 2 absent, segments 3 and 4 in the segment file."""
    file = path.open("rb")
    out = OutgoingFrames(files={path: file})
    out.frames += [(encode_frame_header(1, b"p1", 5), b"hello"), (encode_absent(2), b"")]
    out.frames += [(encode_frame_header(i, b"p" * i, SEGMENT), FileRegion(file, i * SEGMENT, SEGMENT)) for i in (3, 4)]
    return out


def answer(frames: OutgoingFrames, extensions: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == ZERO_COPY_SEND:  # what the server would send, read before the file closes
            region = os.pread(message["file"].fileno(), message["count"], message["offset"])
            message = {**message, "bytes": message.get("head", b"") + region}
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    asyncio.run(frames({"type": "http", "extensions": extensions}, receive, send))  # type: ignore[arg-type]
    return sent


def body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") or m.get("bytes", b"") for m in sent[1:])


def test_a_frames_answer_is_the_same_bytes_with_or_without_zero_copy_and_its_length_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "7.dat"
    path.write_bytes(os.urandom(5 * SEGMENT))
    data = path.read_bytes()
    expected = (encode_frame_header(1, b"p1", 5) + b"hello" + encode_absent(2)
                + b"".join(encode_frame_header(i, b"p" * i, SEGMENT) + data[i * SEGMENT : (i + 1) * SEGMENT]
                           for i in (3, 4)))
    for extensions in ({ZERO_COPY_SEND: {}}, {}):
        frames = frames_of(path)
        sent = answer(frames, extensions)
        assert dict(sent[0]["headers"])[b"content-length"] == str(len(expected)).encode()
        assert body(sent) == expected and sent[-1]["more_body"] is False
        regions = [m for m in sent if m["type"] == ZERO_COPY_SEND]
        assert [(m["offset"], m["count"]) for m in regions] == (
            [(3 * SEGMENT, SEGMENT), (4 * SEGMENT, SEGMENT)] if extensions else [])
        assert frames.files == {}, "the segment file is closed once the answer is sent"
