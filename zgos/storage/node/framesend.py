"""The answer to ``GET /zgos/v1/segments``: a run of frames (``zgos.storage.spec.frames``) with
an exact ``Content-Length``, each segment's bytes sent from its segment file without copying.

Every frame's header and proof are worked out before the answer starts (a few SQLite reads per
segment, in a worker thread), and the segment file is opened then: an open descriptor keeps the
bytes whole while they are sent, even if the file is pruned meanwhile (segment files are only
ever unlinked, never truncated). The data then goes from the page cache to the socket by
``sendfile`` when the server offers ``http.response.zerocopysend`` (``zgos.runtime.zerocopy``),
else by ``pread``. Because the length is exact, the client can read the answer with plain
fixed-size reads and keep the connection for its next request.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from zgos.runtime.zerocopy import ZERO_COPY_SEND
from zgos.storage.node.errors import DataUnavailable
from zgos.storage.node.node import StorageNode
from zgos.storage.node.store import FileSlice, TxRecord
from zgos.storage.spec.flow import compute_segment_count
from zgos.storage.spec.frames import encode_absent, encode_frame_header, encode_proof
from zgos.storage.spec.segment import InvalidSegment

Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class FileRegion:
    """``length`` bytes at ``offset`` of an open segment file."""

    file: BinaryIO
    offset: int
    length: int


@dataclass
class OutgoingFrames:
    """The frames of one answer, in order: each frame's header and proof, then its data as
    bytes (a segment whose row holds its bytes) or as a region of an open segment file."""

    frames: list[tuple[bytes, bytes | FileRegion]] = field(default_factory=list)
    files: dict[Path, BinaryIO] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return sum(len(head) + (data.length if isinstance(data, FileRegion) else len(data))
                   for head, data in self.frames)

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        self.files.clear()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        """Send the frames as an ASGI response (then close the files)."""
        try:
            zero_copy = ZERO_COPY_SEND in scope.get("extensions", {})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"),
                                    (b"content-length", str(self.length).encode())]})
            for head, data in self.frames:
                if not isinstance(data, FileRegion):
                    await send({"type": "http.response.body", "body": head + data, "more_body": True})
                    continue
                if zero_copy:
                    await send({"type": ZERO_COPY_SEND, "head": head, "file": data.file, "offset": data.offset,
                                "count": data.length, "more_body": True})
                else:
                    chunk = await anyio.to_thread.run_sync(os.pread, data.file.fileno(), data.length, data.offset)
                    await send({"type": "http.response.body", "body": head + chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.close()


def outgoing_frames(node: StorageNode, record: TxRecord, indexes: range) -> OutgoingFrames:
    """The frames of segments ``indexes`` of ``record``'s file; a segment not held here (or not
    in the file) is an empty frame."""
    out = OutgoingFrames()
    in_file = range(indexes.start, min(indexes.stop, compute_segment_count(record.entry.size)), indexes.step)
    rows = node.store.segment_rows(record.entry.seq, in_file)
    try:
        for index in indexes:
            out.frames.append(_frame(node, record, index, rows.get(index), out.files))
    except BaseException:
        out.close()
        raise
    return out


def _frame(node: StorageNode, record: TxRecord, index: int, row: tuple[bytes | FileSlice, str | None] | None,
           files: dict[Path, BinaryIO]) -> tuple[bytes, bytes | FileRegion]:
    if row is None:  # not held here, or not in the file (``outgoing_frames`` asks rows only there)
        return encode_absent(index), b""
    source, stored_proof = row
    try:
        proof = encode_proof(node.proof_from(record, index, stored_proof))
    except (DataUnavailable, InvalidSegment):
        return encode_absent(index), b""
    if not isinstance(source, FileSlice):
        return encode_frame_header(index, proof, len(source)), source
    file = files.get(source.path)
    if file is None:
        try:
            file = files[source.path] = source.path.open("rb")
        except FileNotFoundError:  # pruned since its row was read
            return encode_absent(index), b""
    if os.fstat(file.fileno()).st_size < source.offset + source.length:
        return encode_absent(index), b""
    return encode_frame_header(index, proof, source.length), FileRegion(file, source.offset, source.length)
