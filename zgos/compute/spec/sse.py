"""Server-sent events as OpenAI-compatible servers stream them, and the answer inside.

A stream is a sequence of events separated by a blank line; each ``data:`` line carries one
JSON chunk, and ``data: [DONE]`` ends it. A zgos provider appends one more event after
``[DONE]``: ``event: zg-signature`` whose data is the signed Response (``vouchers``), covering
every byte before that event. A stream cut short (the client left, the model server broke
off) ends without ``[DONE]``; its signed Response covers the bytes forwarded until the cut.

**What is billed** (``billing``): every piece of text the model generated, per choice —
``content``, ``reasoning_content`` (or ``reasoning``), and each tool call's
``function.arguments`` (the legacy ``function_call.arguments`` only when a message has no
``tool_calls``: servers send both with the same text). Each piece is tokenized on its own
(``output_parts``), so a tool call's JSON never merges with the text before it. Tool and
function *names* are not billed: a forced call's name is given by the request, not generated.

Pure: bytes in, values out.
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


def body_output(body: bytes) -> list[str]:
    """The billed pieces of a non-streamed chat completion (``choices[].message``): see the
    module docstring. Empty pieces are left out."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return []
    pieces: dict[tuple[int, str, int], list[str]] = {}
    _collect(data, "message", pieces)
    return _joined(pieces)


def stream_output(events: list[bytes]) -> list[str]:
    """The billed pieces of a stream: every chunk's deltas up to ``[DONE]`` (or the cut),
    concatenated per choice and kind in the order they first appeared."""
    pieces: dict[tuple[int, str, int], list[str]] = {}
    for event in events:
        name, data = event_fields(event)
        if data == DONE_DATA:
            break
        if name is None and data:
            try:
                chunk: Any = json.loads(data)
            except ValueError:
                continue
            _collect(chunk, "delta", pieces)
    return _joined(pieces)


def _joined(pieces: dict[tuple[int, str, int], list[str]]) -> list[str]:
    return [text for text in ("".join(parts) for parts in pieces.values()) if text]


def _collect(data: Any, key: str, pieces: dict[tuple[int, str, int], list[str]]) -> None:
    """Add the generated text of one completion or chunk to ``pieces``, keyed by
    (choice index, kind, tool call index)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return
    for position, choice in enumerate(data["choices"]):
        if not isinstance(choice, dict):
            continue
        part = choice.get(key)
        if not isinstance(part, dict):
            continue
        index = choice.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else position
        for kind in ("content", "reasoning_content", "reasoning"):
            text = part.get(kind)
            if isinstance(text, str) and text:
                pieces.setdefault((index, kind, 0), []).append(text)
        calls = part.get("tool_calls")
        if isinstance(calls, list) and calls:
            for order, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(arguments, str) and arguments:
                    slot = call.get("index", order)
                    slot = slot if isinstance(slot, int) and not isinstance(slot, bool) else order
                    pieces.setdefault((index, "tool", slot), []).append(arguments)
        else:
            legacy = part.get("function_call")
            arguments = legacy.get("arguments") if isinstance(legacy, dict) else None
            if isinstance(arguments, str) and arguments:
                pieces.setdefault((index, "tool", 0), []).append(arguments)


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
