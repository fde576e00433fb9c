"""``KvClient``: read KV streams from a KV node and write them through storage.

Reads are 0G's ``kv_*`` calls (``zgos.kv.node.rpc``); a value longer than one call's
``MAX_QUERY_LEN`` is read in pieces, all of one version. A write is a KV transaction
(``zgos.kv.spec.stream``) uploaded as a log file tagged with its streams; ``write`` returns
once the KV node has replayed it, with the node's result, so a write is read back at once
(``wait=False`` returns once it is submitted).
"""

from __future__ import annotations

import base64
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from zgos.core.errors import ZgError
from zgos.kv.spec.replay import COMMIT
from zgos.kv.spec.state import Entry
from zgos.kv.spec.stream import StreamData, compute_stream_tags, encode_stream_data
from zgos.runtime.netutil import JsonRpcFailure, JsonRpcUnreachable, call_jsonrpc
from zgos.storage.client import StorageClient

MAX_QUERY_LEN = 256 * 1024  # bytes per kv_getValue call: the node's limit
RPC_TIMEOUT_S = 30.0
REPLAY_TIMEOUT_S = 120.0
POLL_S = 0.05
PAGE_KEYS = 1000  # keys per kv_getEntries call (the node's limit)


class KvError(ZgError):
    """A KV call failed or a write was not committed."""


@dataclass(frozen=True)
class WriteResult:
    tx_seq: int
    root: bytes
    result: str | None  # the node's replay result; None with wait=False

    @property
    def committed(self) -> bool:
        return self.result == COMMIT


def _entry(answer: dict[str, Any], key: bytes, data: bytes) -> Entry:
    return Entry(key, int(answer["version"]), data)


class KvClient:
    """One KV node (``url``) and, for writes, a ``StorageClient`` with a paying account."""

    def __init__(self, url: str, storage: StorageClient | None = None, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.url = url
        self.storage = storage
        self.http = httpx.Client(timeout=timeout_s)

    def __enter__(self) -> KvClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, *params: Any) -> Any:
        try:
            return call_jsonrpc(self.http, self.url, method, params)
        except JsonRpcUnreachable as exc:
            raise KvError(f"cannot reach the KV node at {self.url} ({exc})",
                          "is it running? `zg devnet status`, or pass its URL with --node") from None
        except JsonRpcFailure as exc:
            raise KvError(f"{method} at {self.url} failed: {exc}", "is the KV node running? `zg kv status`") from None

    # --- reads -----------------------------------------------------------------------

    def get(self, stream_id: bytes, key: bytes, version: int | None = None) -> Entry | None:
        """The value of ``key`` (as of ``version``), None if never written."""
        extra = [] if version is None else [version]
        b64 = base64.b64encode(key).decode()
        first = self.call("kv_getValue", "0x" + stream_id.hex(), b64, 0, MAX_QUERY_LEN, *extra)
        if int(first["version"]) == 0 and int(first["size"]) == 0:
            return None
        data, pinned = bytearray(base64.b64decode(first["data"])), [int(first["version"])]
        while len(data) < int(first["size"]):  # read the rest at the version of the first piece
            piece = self.call("kv_getValue", "0x" + stream_id.hex(), b64, len(data), MAX_QUERY_LEN, *pinned)
            if not piece["data"]:
                raise KvError(f"the KV node stopped at byte {len(data)} of {first['size']}")
            data += base64.b64decode(piece["data"])
        return _entry(first, key, bytes(data))

    def _page_items(self, stream_id: bytes, after: bytes | None, prefix: bytes, version: int | None,
                    page: int) -> Iterator[tuple[bytes, int, int, bytes]]:
        """``(key, version, size, first piece of the value)`` of the stream's keys in byte order,
        deleted ones (size 0) included, a page of keys per ``kv_getEntries`` call; ``after`` is
        exclusive, and one before ``prefix`` starts at ``prefix``."""
        extra = [] if version is None else [version]
        if after is not None and after >= prefix:
            start, inclusive = after, False
        else:
            start, inclusive = prefix, True
        while True:
            key_b64 = base64.b64encode(start).decode() if start else None
            found = self.call("kv_getEntries", "0x" + stream_id.hex(), key_b64, inclusive, page, *extra)
            for item in found:
                key = base64.b64decode(item["key"])
                if not key.startswith(prefix):
                    return
                yield key, int(item["version"]), int(item["size"]), base64.b64decode(item["data"])
            if len(found) < page:
                return
            start, inclusive = base64.b64decode(found[-1]["key"]), False

    def key_sizes(self, stream_id: bytes, after: bytes | None = None, prefix: bytes = b"",
                  version: int | None = None, page: int = PAGE_KEYS) -> Iterator[tuple[bytes, int, int]]:
        """``(key, version, size)`` of the stream's keys in byte order, deleted ones included."""
        for key, key_version, size, _ in self._page_items(stream_id, after, prefix, version, page):
            yield key, key_version, size

    def entries(self, stream_id: bytes, after: bytes | None = None, prefix: bytes = b"",
                version: int | None = None, page: int = PAGE_KEYS) -> Iterator[Entry]:
        """The stream's keys in byte order (after ``after``, starting with ``prefix``), each with
        its value; deleted keys (size 0) are skipped."""
        for key, key_version, size, data in self._page_items(stream_id, after, prefix, version, page):
            if size > len(data):  # a long value: the rest at the same version
                whole = self.get(stream_id, key, key_version)
                data = whole.data if whole is not None else data
            if size > 0:
                yield Entry(key, key_version, data)

    def result(self, tx_seq: int) -> str | None:
        value = self.call("kv_getTransactionResult", tx_seq)
        return None if value is None else str(value)

    def status(self) -> dict[str, Any]:
        value: dict[str, Any] = self.call("kv_getReplayStatus")
        return value

    def replayed_version(self) -> int:
        """The version the node's state is at: the last log entry it replayed (0 before any)."""
        return max(int(self.status()["nextTxSeq"]) - 1, 0)

    def streams(self) -> list[bytes]:
        return [bytes.fromhex(s.removeprefix("0x")) for s in self.call("kv_getHoldingStreamIds")]

    # --- writes ----------------------------------------------------------------------

    def write(self, data: StreamData, *, wait: bool = True, timeout_s: float = REPLAY_TIMEOUT_S) -> WriteResult:
        """Upload ``data`` as a KV transaction; with ``wait``, return once it is replayed. Always
        a new log entry: the same bytes written again (``k = v`` after ``k = w``) are a new write."""
        if self.storage is None:
            raise KvError("writing needs storage nodes and an account")
        with tempfile.TemporaryDirectory(prefix="zgos-kv-") as scratch:
            path = Path(scratch) / "tx"
            path.write_bytes(encode_stream_data(data))
            # a new log entry even for bytes written before: setting k=a again after k=b is a write
            uploaded = self.storage.upload(path, tags=compute_stream_tags(data.stream_ids()), new_entry=True)
        result = self.wait_replayed(uploaded.tx_seq, timeout_s) if wait else None
        return WriteResult(uploaded.tx_seq, uploaded.root, result)


    def wait_replayed(self, tx_seq: int, timeout_s: float = REPLAY_TIMEOUT_S) -> str:
        """The node's result for ``tx_seq`` once it has replayed past it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if int(self.status()["nextTxSeq"]) > tx_seq:
                result = self.result(tx_seq)
                if result is None:
                    raise KvError(f"tx {tx_seq} is not a transaction of this KV node's streams",
                                  "check the stream id, and `zg kv streams`")
                return result
            time.sleep(POLL_S)
        raise KvError(f"tx {tx_seq} was not replayed within {timeout_s:g} s", "see `zg kv status`")
