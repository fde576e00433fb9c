"""Server-sent events as OpenAI-compatible servers stream them, and the answer text inside.

A stream is a sequence of events separated by a blank line; each ``data:`` line carries one
JSON chunk, and ``data: [DONE]`` ends it. A zgos provider appends one more event after
``[DONE]``: ``event: zg-signature`` whose data is the signed Response (``vouchers``), covering
every byte before that event. Pure: bytes in, values out.
"""

from __future__ import annotations

import json
from typing import Any

EVENT_SEPARATOR = b"\n\n"
DONE_DATA = b"[DONE]"
SIGNATURE_EVENT = b"zg-signature"


def format_event(data: bytes, event: bytes | None = None) -> bytes:
    """One SSE event: optional ``event:`` line, one ``data:`` line, blank line."""
    head = b"event: " + event + b"\n" if event else b""
    return head + b"data: " + data + EVENT_SEPARATOR


def format_signature_event(signed_response_json: str) -> bytes:
    return format_event(signed_response_json.encode(), SIGNATURE_EVENT)


class EventSplitter:
    """Cuts a byte stream into complete events (bytes including their trailing blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        events = []
        while (end := self._buffer.find(EVENT_SEPARATOR)) >= 0:
            events.append(self._buffer[: end + len(EVENT_SEPARATOR)])
            self._buffer = self._buffer[end + len(EVENT_SEPARATOR):]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes received after the last complete event."""
        return self._buffer


def event_fields(event: bytes) -> tuple[bytes | None, bytes]:
    """``(event name or None, data)`` of one event; multi-line data is joined with newlines."""
    name: bytes | None = None
    data: list[bytes] = []
    for line in event.strip(b"\n").split(b"\n"):
        if line.startswith(b"event:"):
            name = line[len(b"event:"):].strip()
        elif line.startswith(b"data:"):
            data.append(line[len(b"data:"):].removeprefix(b" "))
    return name, b"\n".join(data)


def is_done_event(event: bytes) -> bool:
    return event_fields(event)[1] == DONE_DATA


def is_signature_event(event: bytes) -> bool:
    return event_fields(event)[0] == SIGNATURE_EVENT


def chunk_text(data: bytes) -> str:
    """The answer text in one stream chunk's JSON (``choices[].delta.content``), or ''."""
    return _text(data, "delta")


def body_text(body: bytes) -> str:
    """The answer text of a non-streamed chat completion (``choices[].message.content``)."""
    return _text(body, "message")


def _text(raw: bytes, key: str) -> str:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return ""
    return "".join(_contents(data, key))


def stream_text(events: list[bytes]) -> str:
    """The whole answer of a stream: every chunk's text up to ``[DONE]``."""
    parts = []
    for event in events:
        name, data = event_fields(event)
        if data == DONE_DATA:
            break
        if name is None and data:
            parts.append(chunk_text(data))
    return "".join(parts)


def _contents(data: Any, key: str) -> list[str]:
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return []
    texts = []
    for choice in data["choices"]:
        part = choice.get(key) if isinstance(choice, dict) else None
        content = part.get("content") if isinstance(part, dict) else None
        if isinstance(content, str):
            texts.append(content)
    return texts
