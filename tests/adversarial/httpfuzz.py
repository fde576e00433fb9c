"""Seeded malformed HTTP traffic for any HTTP JSON service (storage node, indexer, broker, proxy).

A ``FuzzProfile`` says what a service looks like (its JSON-RPC path and methods, REST paths,
raw-upload paths, body cap, values it knows); ``generate_cases(profile, seed, count)`` makes
``count`` cases from a seeded generator, each the raw bytes of one exchange on a fresh TCP
connection; ``run_cases`` sends them, a few at a time, and returns a ``FuzzReport``: every
status received, answers that carry a traceback, exchanges the service left hanging.

Kinds of case (``KINDS``):
* ``rpc``: calls with wrong types, huge/negative/float numbers, unknown methods, bad ids;
* ``batch``: small batches of those, and oversized ones (101 to 1,000 calls);
* ``deep``: nesting from 65 to 100,000 levels; ``bytes``: random bytes and invalid UTF-8;
* ``oversized``: bodies over the cap, declared only or really sent;
* ``content-type``: a good body under a missing, unknown or wrong content type;
* ``framing``: bad, negative, duplicated or conflicting Content-Length / Transfer-Encoding,
  broken chunked bodies; ``head``: garbage request lines, huge or broken headers;
* ``rest``: every method on known and unknown paths, path values huge, negative, non-hex,
  percent-garbage or long; ``upload``: raw uploads with fuzzed headers and bodies;
* ``slow``: a valid request trickled in pieces; ``half-closed``: a request, whole or cut
  short, then ``SHUT_WR``; ``pipelined``: requests back to back followed by garbage.

``ZGOS_FUZZ_REQUESTS`` (cases per service) and ``ZGOS_FUZZ_SEED`` (an integer, or ``random``)
set the corpus; ``make fuzz`` runs a bigger one.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REQUESTS = 1000
DEFAULT_SEED = 20261127
EXCHANGE_TIMEOUT_S = 30.0
PARALLEL_CONNECTIONS = 8
TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b'File "/')
KINDS = ("rpc", "batch", "deep", "bytes", "oversized", "content-type", "framing", "head", "rest", "upload",
         "slow", "half-closed", "pipelined")
_WEIGHTS = (22, 8, 6, 6, 4, 6, 8, 6, 14, 6, 4, 4, 4)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")

HUGE_NUMBERS = ("0", "-1", "1", "2147483648", "9007199254740993", "9223372036854775807", "9223372036854775808",
                "18446744073709551615", "18446744073709551616", "-9223372036854775809", "1" + "0" * 30,
                "9" * 400, "1e308", "1e999", "-0", "0.5", "-1.5e-300", "NaN", "Infinity", "-Infinity")
ODD_STRINGS = ("", "0x", "0x" + "00" * 32, "0x" + "gg" * 32, "0X" + "ab" * 32, "ab" * 32, "0x" + "ab" * 33,
               "../../../etc/passwd", "\u0000", "💥" * 50, "A" * 5000, "%ff%fe", "<script>", "' OR 1=1 --")
CONTENT_TYPES = ("", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/xml", "application/json-patch+json",
                 "application/octet-stream", "*/*", "application", ";;;", "application/json\x00")


@dataclass(frozen=True)
class FuzzProfile:
    """What a service looks like to the fuzzer. Path templates take ``{n}`` (a number),
    ``{h}`` (a 32-byte hex hash) and ``{s}`` (odd text)."""

    host: str = "127.0.0.1"  # the Host header (with the port, for services that check it)
    rpc_path: str | None = "/"
    rpc_methods: tuple[str, ...] = ()
    json_posts: tuple[str, ...] = ()  # REST paths taking a JSON body
    get_paths: tuple[str, ...] = ("/",)
    raw_uploads: tuple[tuple[str, str], ...] = ()  # (path template, content type)
    upload_headers: tuple[str, ...] = ()  # headers a raw upload carries, sent fuzzed
    max_body_bytes: int = 1024 * 1024
    numbers: tuple[int, ...] = ()  # values the service knows (real sequence numbers, indexes)
    hashes: tuple[str, ...] = ()  # ditto (real roots)
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (e.g. a token)


@dataclass(frozen=True)
class FuzzCase:
    kind: str
    pieces: tuple[bytes, ...]  # sent in order on one fresh connection
    pause_s: float = 0.0  # between pieces: a slow client
    half_close: bool = False  # shutdown(SHUT_WR) after the last piece

    def describe(self) -> str:
        sent = b"".join(self.pieces)
        return f"{self.kind}: {sent[:160]!r}{'...' if len(sent) > 160 else ''} ({len(sent)} bytes)"


@dataclass
class Exchange:
    case: FuzzCase
    statuses: list[int]
    answer: bytes
    hung: bool = False


@dataclass
class FuzzReport:
    exchanges: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0

    def server_errors(self) -> list[Exchange]:
        """Exchanges answered >= 500 other than 503 (overload is fine)."""
        return [e for e in self.exchanges if any(s >= 500 and s != 503 for s in e.statuses)]

    def tracebacks(self) -> list[Exchange]:
        return [e for e in self.exchanges if any(marker in e.answer for marker in TRACEBACK_MARKERS)]

    def hung(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.hung]

    def statuses(self) -> Counter[int]:
        return Counter(s for e in self.exchanges for s in e.statuses)

    def problems(self) -> str:
        """Empty when the service passed; else one line per bad exchange (at most 20)."""
        lines = [f"{why}: {e.case.describe()} -> {e.statuses} {e.answer[:200]!r}"
                 for why, found in (("5xx", self.server_errors()), ("traceback", self.tracebacks()),
                                    ("hung", self.hung()))
                 for e in found]
        return "\n".join(lines[:20])


def fuzz_settings() -> tuple[int, int]:
    """(cases per service, seed) from ``ZGOS_FUZZ_REQUESTS`` and ``ZGOS_FUZZ_SEED``."""
    count = int(os.environ.get("ZGOS_FUZZ_REQUESTS", DEFAULT_REQUESTS))
    seed_text = os.environ.get("ZGOS_FUZZ_SEED", str(DEFAULT_SEED))
    seed = int.from_bytes(os.urandom(4), "big") if seed_text == "random" else int(seed_text)
    return count, seed


# --- generation ------------------------------------------------------------------------------


class _Generator:
    def __init__(self, profile: FuzzProfile, seed: int) -> None:
        self.profile = profile
        self.rng = random.Random(seed)

    # values

    def number(self) -> str:
        known = [str(n) for n in self.profile.numbers]
        return self.rng.choice(list(HUGE_NUMBERS) + known * 3)

    def text(self) -> str:
        return self.rng.choice(list(ODD_STRINGS) + list(self.profile.hashes) * 3)

    def value(self, depth: int = 0) -> str:
        """A JSON value as text (numbers beyond what JSON libraries round-trip included)."""
        roll = self.rng.random()
        if roll < 0.35:
            return self.number()
        if roll < 0.6:
            return json.dumps(self.text())
        if roll < 0.7:
            return self.rng.choice(("true", "false", "null"))
        if depth >= 3:
            return "[]"
        items = [self.value(depth + 1) for _ in range(self.rng.randrange(4))]
        if roll < 0.85:
            return "[" + ",".join(items) + "]"
        keys = ["root", "data", "index", "proof", "fileSize", "lemma", "path", "x"]
        return "{" + ",".join(f"{json.dumps(self.rng.choice(keys))}:{item}" for item in items) + "}"

    def call(self, with_id: bool = True) -> str:
        methods = list(self.profile.rpc_methods) or ["x"]
        method = self.rng.choice([*methods, "nope", "", "zgs_", "admin_shutdown ", "__class__"])
        params = self.value() if self.rng.random() < 0.2 else "[" + ",".join(self.value() for _ in range(self.rng.randrange(4))) + "]"
        parts = ['"jsonrpc":"2.0"' if self.rng.random() < 0.95 else '"jsonrpc":' + self.value(),
                 f'"method":{json.dumps(method)}', f'"params":{params}']
        if with_id:
            parts.append('"id":' + self.rng.choice(("1", '"a"', "null", self.value(2))))
        self.rng.shuffle(parts)
        return "{" + ",".join(parts) + "}"

    # requests

    def request(self, method: str, path: str, body: bytes = b"", content_type: str | None = "application/json",
                extra: Sequence[tuple[str, str]] = (), close: bool = True, length: str | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.profile.host}"]
        lines += [f"{k}: {v}" for k, v in self.profile.headers]
        if content_type is not None and (body or length is not None):
            lines.append(f"Content-Type: {content_type}")
        if body or length is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body) if length is None else length}")
        lines += [f"{k}: {v}" for k, v in extra]
        if close:
            lines.append("Connection: close")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body

    def json_target(self) -> str:
        targets = ([self.profile.rpc_path] if self.profile.rpc_path else []) + list(self.profile.json_posts)
        return self.rng.choice(targets or ["/"])

    def path(self) -> str:
        template = self.rng.choice(list(self.profile.get_paths) + [u for u, _ in self.profile.raw_uploads] + ["/nowhere"])
        filled = re.sub(r"\{n\}", lambda _: self.rng.choice([self.number().lstrip("-"), "-1", "1.5", "x", "9" * 40]), template)
        filled = re.sub(r"\{h\}", lambda _: self.rng.choice([*self.profile.hashes, "0x" + "ab" * 32, "0x12", "zz"]), filled)
        filled = re.sub(r"\{s\}", lambda _: self.rng.choice(["%ff%fe", "..%2f..%2f", "a" * 3000, "%00", "x"]), filled)
        if self.rng.random() < 0.3:
            filled += "?" + self.rng.choice(["root=", "root=%ff", "root=0x" + "ab" * 32 + "&root=1", "a=" + "b" * 4000,
                                              "name=%00&root=" + (self.profile.hashes or ("x",))[0], "&&&=="])
        return filled

    def case(self, kind: str) -> FuzzCase:
        rng = self.rng
        if kind == "rpc":
            return FuzzCase(kind, (self.request("POST", self.json_target(), self.call(rng.random() < 0.9).encode()),))
        if kind == "batch":
            size = rng.choice((1, 2, 5, 99, 100, 101, 500, 1000)) if rng.random() < 0.4 else rng.randrange(2, 6)
            body = "[" + ",".join(self.call(rng.random() < 0.9) for _ in range(size)) + "]"
            return FuzzCase(kind, (self.request("POST", self.json_target(), body.encode()),))
        if kind == "deep":
            levels = rng.choice((65, 100, 1000, 10_000, 100_000))
            body = rng.choice(("[" * levels, "[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels,
                               '{"jsonrpc":"2.0","id":1,"method":"x","params":' + "[" * levels + "]" * levels + "}"))
            return FuzzCase(kind, (self.request("POST", self.json_target(), body.encode()),))
        if kind == "bytes":
            body = rng.choice((rng.randbytes(rng.randrange(1, 300)), b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}',
                               b'"\xed\xa0\x80"', b"\x00" * 64, b'{"a":"\\ud800"}'))
            return FuzzCase(kind, (self.request("POST", self.json_target(), body),))
        if kind == "oversized":
            cap = self.profile.max_body_bytes
            if rng.random() < 0.7 or cap > 4 * 1024 * 1024:  # declared only: the edge must refuse before reading
                length = rng.choice((str(cap + 1), str(10**15), "9" * 30))
                return FuzzCase(kind, (self.request("POST", self.json_target(), length=length) + b"[1,2,3",), half_close=True)
            return FuzzCase(kind, (self.request("POST", self.json_target(), b"[" + b"1," * (cap // 2) + b"1]"),))
        if kind == "content-type":
            body = self.call().encode()
            return FuzzCase(kind, (self.request("POST", self.json_target(), body, content_type=rng.choice(CONTENT_TYPES) or None),))
        if kind == "framing":
            return self.framing()
        if kind == "head":
            return self.head()
        if kind == "rest":
            method = rng.choice(("GET", "GET", "GET", "HEAD", "DELETE", "PATCH", "OPTIONS", "TRACE", "PUT", "POST", "FOO"))
            body = rng.choice((b"", b"", b"{}", b"[]POST / HTTP/1.1\r\n"))
            return FuzzCase(kind, (self.request(method, self.path(), body, content_type=rng.choice(("application/json", None))),))
        if kind == "upload":
            return self.upload()
        if kind == "slow":
            whole = self.request("POST", self.json_target(), self.call().encode())
            cuts = sorted(rng.sample(range(1, len(whole)), min(len(whole) - 1, rng.randrange(2, 6))))
            pieces = tuple(whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True))
            return FuzzCase(kind, pieces, pause_s=rng.uniform(0.02, 0.2))
        if kind == "half-closed":
            whole = self.request("POST", self.json_target(), self.call().encode(), close=rng.random() < 0.5)
            return FuzzCase(kind, (whole[: rng.randrange(1, len(whole) + 1)],), half_close=True)
        if kind == "pipelined":
            first = self.request("POST", self.json_target(), self.call().encode(), close=False)
            second = self.request("GET", self.path(), close=False)
            garbage = rng.choice((b"\x00\xff garbage\r\n\r\n", b"[]POST / HTTP/1.1\r\nHost: x\r\n\r\n", rng.randbytes(40)))
            return FuzzCase(kind, (first + second + garbage,), half_close=True)
        raise ValueError(f"unknown kind {kind}")

    def framing(self) -> FuzzCase:
        rng = self.rng
        target, body = self.json_target(), self.call().encode()
        head = f"POST {target} HTTP/1.1\r\nHost: {self.profile.host}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.profile.headers)
        framings = (
            f"Content-Length: -{len(body)}\r\n", f"Content-Length: {len(body)}x\r\n", "Content-Length: \r\n",
            f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 5}\r\n",
            f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, identity\r\n", f"Content-Length: {max(0, len(body) - 3)}\r\n",
        )
        if rng.random() < 0.4:
            chunk = rng.choice((f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n",
                                b"zz\r\n" + body + b"\r\n0\r\n\r\n", b"fffffffffffffff\r\n" + body,
                                f"{len(body) + 10:x}\r\n".encode() + body + b"\r\n0\r\n\r\n"))
            return FuzzCase("framing", ((head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunk,), half_close=True)
        return FuzzCase("framing", ((head + rng.choice(framings) + "Connection: close\r\n\r\n").encode() + body,), half_close=True)

    def head(self) -> FuzzCase:
        rng = self.rng
        heads = (
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"GET  /  HTTP/1.1\r\n\r\n",
            b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"Connection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n\xff\xfe",
        )
        return FuzzCase("head", (rng.choice(heads),), half_close=True)

    def upload(self) -> FuzzCase:
        rng = self.rng
        if not self.profile.raw_uploads:
            return self.case("rest")
        template, content_type = rng.choice(self.profile.raw_uploads)
        path = re.sub(r"\{n\}", lambda _: self.rng.choice([str(n) for n in self.profile.numbers] + [self.number().lstrip("-")]), template)
        extra = []
        for name in self.profile.upload_headers:
            if rng.random() < 0.85:
                extra.append((name, rng.choice((self.number(), self.text()[:200], self.value(), "[" * 1000, "{"))))
        size = rng.choice((0, 1, 255, 256, 4096, 256 * 1024, 256 * 1024 + 1))
        return FuzzCase("upload", (self.request("PUT", path, rng.randbytes(size), content_type=content_type, extra=extra),))


def generate_cases(profile: FuzzProfile, seed: int, count: int) -> list[FuzzCase]:
    """``count`` cases for ``profile``; the same seed gives the same cases."""
    generator = _Generator(profile, seed)
    kinds = generator.rng.choices(KINDS, weights=_WEIGHTS, k=count)
    return [generator.case(kind) for kind in kinds]


# --- running ---------------------------------------------------------------------------------


def parse_statuses(answer: bytes) -> list[int]:
    """Status codes of the responses in ``answer`` (walked by Content-Length / chunked framing,
    so a body that happens to contain a status line is not counted)."""
    statuses: list[int] = []
    position = 0
    while (match := _STATUS_LINE.match(answer, position)) is not None:
        statuses.append(int(match[1]))
        end = answer.find(b"\r\n\r\n", match.end() - 2)
        if end < 0:
            break
        head = answer[match.end() : end].lower()
        position = end + 4
        length = re.search(rb"(?:^|\r\n)content-length: *(\d+)", head)
        if length is not None:
            position += int(length[1])
        elif b"transfer-encoding: chunked" in head:
            while (size_end := answer.find(b"\r\n", position)) >= 0:
                size = int(answer[position:size_end].split(b";")[0] or b"0", 16)
                position = size_end + 2 + size + 2
                if size == 0:
                    break
    return statuses


def send_case(host: str, port: int, case: FuzzCase, timeout_s: float = EXCHANGE_TIMEOUT_S) -> Exchange:
    """One exchange on a fresh connection: send, then read until the service closes it."""
    answer = b""
    hung = False
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        try:
            for index, piece in enumerate(case.pieces):
                if index and case.pause_s:
                    time.sleep(case.pause_s)
                sock.sendall(piece)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the service may answer and close before it has read everything
            pass
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                hung = True
                break
            except OSError:  # reset after an early answer
                break
            if not chunk:
                break
            answer += chunk
            if time.monotonic() > deadline:
                hung = True
                break
    return Exchange(case, parse_statuses(answer), answer, hung)


def run_cases(host: str, port: int, cases: Sequence[FuzzCase], parallel: int = PARALLEL_CONNECTIONS,
              timeout_s: float = EXCHANGE_TIMEOUT_S) -> FuzzReport:
    """Send every case (``parallel`` connections at a time) and collect what came back; an
    exchange the service has not closed after ``timeout_s`` counts as hung."""
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        exchanges = list(pool.map(lambda case: send_case(host, port, case, timeout_s), cases))
    return FuzzReport(exchanges, time.monotonic() - started)


def summary(report: FuzzReport) -> dict[str, Any]:
    """A short account for a test's output: cases per kind, statuses, time."""
    return {"cases": Counter(e.case.kind for e in report.exchanges), "statuses": report.statuses(),
            "seconds": round(report.seconds, 1)}


def assert_survives_fuzz(url: str, profile: FuzzProfile, seed_offset: int) -> FuzzReport:
    """Send the seeded cases for ``profile`` to ``url`` (``http://host:port``) and fail on any
    5xx the service made, traceback or hang, naming the seed that reproduces it."""
    count, seed = fuzz_settings()
    host, port = url.removeprefix("http://").split(":")
    report = run_cases(host, int(port), generate_cases(profile, seed + seed_offset, count))
    print(f"fuzz {url} seed {seed + seed_offset}: {summary(report)}")
    assert report.problems() == "", f"seed {seed + seed_offset}:\n{report.problems()}"
    return report
