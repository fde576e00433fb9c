"""0G's ``kv_*`` JSON-RPC methods (storage.md §6), their params and results.

Param order and result shapes are 0G's, so 0G's TS SDK (``KvClient``, ``KvIterator``) reads a
zgos KV node unchanged: stream ids and accounts are hex, keys and values base64; ``version``
is optional everywhere and means "as of that transaction" (default: the latest). A value is
read in pieces of at most ``MAX_QUERY_LEN`` bytes. A missing key reads as version 0, size 0,
as 0G answers. zgos adds ``kv_getReplayStatus`` (replay progress) and ``kv_getEntries``
(a page of consecutive keys with their values, so listing a stream is not two calls a key).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool
from pydantic.alias_generators import to_camel

from zgos.kv.node.store import KvStore
from zgos.kv.spec.replay import has_write_permission
from zgos.kv.spec.state import LATEST, Entry
from zgos.kv.spec.stream import ADDRESS_SIZE, MAX_KEY_SIZE, STREAM_ID_SIZE, parse_hex_id
from zgos.runtime.jsonrpc import (
    INVALID_PARAMS,
    MAX_INT64,
    Method,
    Params,
    RpcError,
    parse_params,
    validate_int,
)

MAX_QUERY_LEN = 256 * 1024  # bytes of a value per call (0G's max_query_len_in_bytes)
MAX_PAGE_KEYS = 1000  # keys per kv_getEntries call
MAX_PAGE_BYTES = 4 * 1024 * 1024  # value bytes per kv_getEntries answer
MAX_U64 = (1 << 64) - 1


def _hex(size: int, what: str) -> Callable[[Any], bytes]:
    def parse(value: Any) -> bytes:
        raw = parse_hex_id(value, size) if isinstance(value, str) else None
        if raw is None:
            raise ValueError(f"{what} must be 0x and {2 * size} hex digits")
        return raw
    return parse


def _key(value: Any) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except binascii.Error:
        raw = b""
    if not 1 <= len(raw) <= MAX_KEY_SIZE:
        raise ValueError("key must be 1 or more bytes, base64")
    return raw


def _int(name: str, maximum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            return validate_int(value, name, 0, maximum)
        except RpcError as exc:
            raise ValueError(exc.message) from None
    return parse


StreamId = Annotated[bytes, BeforeValidator(_hex(STREAM_ID_SIZE, "streamId"))]
Account = Annotated[bytes, BeforeValidator(_hex(ADDRESS_SIZE, "account"))]
Key = Annotated[bytes, BeforeValidator(_key)]
Start = Annotated[int, BeforeValidator(_int("startIndex", MAX_INT64))]
Length = Annotated[int, BeforeValidator(_int("len", MAX_QUERY_LEN))]
Version = Annotated[int, BeforeValidator(_int("version", MAX_U64))]
TxSeq = Annotated[int, BeforeValidator(_int("txSeq", MAX_INT64))]


class KvParams(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel)


class ValueParams(KvParams):
    stream_id: StreamId
    key: Key
    start_index: Start
    len: Length
    version: Version | None = None


class NextParams(KvParams):
    stream_id: StreamId
    key: Key
    start_index: Start
    len: Length
    inclusive: StrictBool
    version: Version | None = None


class EdgeParams(KvParams):
    stream_id: StreamId
    start_index: Start
    len: Length
    version: Version | None = None


class PageParams(KvParams):
    stream_id: StreamId
    key: Key | None
    inclusive: StrictBool
    limit: Annotated[int, BeforeValidator(_int("limit", MAX_PAGE_KEYS))]
    version: Version | None = None


class TxParams(KvParams):
    tx_seq: TxSeq


class AccountKeyParams(KvParams):
    account: Account
    stream_id: StreamId
    key: Key
    version: Version | None = None


class AccountParams(KvParams):
    account: Account
    stream_id: StreamId
    version: Version | None = None


class KeyParams(KvParams):
    stream_id: StreamId
    key: Key
    version: Version | None = None


def _piece(entry: Entry, start: int, length: int) -> str:
    if start > len(entry.data):
        raise RpcError(INVALID_PARAMS, f"startIndex {start} is past the value's {len(entry.data)} bytes")
    return base64.b64encode(entry.data[start:start + length]).decode()


def value_json(entry: Entry | None, start: int, length: int) -> dict[str, Any]:
    """0G's ``ValueSegment``: ``{version, data (base64), size}``; a missing key is version 0."""
    if entry is None:
        return {"version": 0, "data": "", "size": 0}
    return {"version": entry.version, "data": _piece(entry, start, length), "size": len(entry.data)}


def key_value_json(entry: Entry | None, start: int, length: int) -> dict[str, Any] | None:
    """0G's ``KeyValueSegment``: ``{version, key (base64), data (base64), size}``, or null."""
    if entry is None:
        return None
    return {"version": entry.version, "key": base64.b64encode(entry.key).decode(),
            "data": _piece(entry, start, length), "size": len(entry.data)}


def page_json(entries: list[Entry]) -> list[dict[str, Any]]:
    """``kv_getEntries`` (zgos): ``KeyValueSegment``s of consecutive keys. Values are sent whole
    until the answer holds ``MAX_PAGE_BYTES``; past that, and beyond ``MAX_QUERY_LEN`` each,
    only their first piece (``size`` says how much there is: read the rest with kv_getValue)."""
    page, budget = [], MAX_PAGE_BYTES
    for entry in entries:
        piece = min(len(entry.data), MAX_QUERY_LEN, max(budget, 0))
        budget -= piece
        page.append(key_value_json(entry, 0, piece))
    return [item for item in page if item is not None]


def _at(store: KvStore, version: int | None) -> Any:
    return store.at(LATEST if version is None else version)


def read_methods(store: KvStore) -> dict[str, Method]:
    """The value and iteration methods."""

    def get_value(params: Params) -> Any:
        p = parse_params(ValueParams, params)
        return value_json(_at(store, p.version).get(p.stream_id, p.key), p.start_index, p.len)

    def neighbour(direction: str) -> Method:
        def method(params: Params) -> Any:
            p = parse_params(NextParams, params)
            view = _at(store, p.version)
            found = view.next(p.stream_id, p.key, p.inclusive) if direction == "next" else \
                view.prev(p.stream_id, p.key, p.inclusive)
            return key_value_json(found, p.start_index, p.len)
        return method

    def edge(which: str) -> Method:
        def method(params: Params) -> Any:
            p = parse_params(EdgeParams, params)
            view = _at(store, p.version)
            found = view.first(p.stream_id) if which == "first" else view.last(p.stream_id)
            return key_value_json(found, p.start_index, p.len)
        return method

    def get_entries(params: Params) -> Any:
        p = parse_params(PageParams, params)
        start, inclusive = (p.key, p.inclusive) if p.key is not None else (b"", True)
        return page_json(_at(store, p.version).page(p.stream_id, start, inclusive, p.limit))

    return {"kv_getValue": get_value, "kv_getNext": neighbour("next"), "kv_getPrev": neighbour("prev"),
            "kv_getFirst": edge("first"), "kv_getLast": edge("last"), "kv_getEntries": get_entries}


def permission_methods(store: KvStore) -> dict[str, Method]:
    """The access-control questions, as of a version."""

    def has_permission(params: Params) -> Any:
        p = parse_params(AccountKeyParams, params)
        return has_write_permission(_at(store, p.version), p.account, p.stream_id, p.key)

    def is_admin(params: Params) -> Any:
        p = parse_params(AccountParams, params)
        return _at(store, p.version).is_admin(p.account, p.stream_id)

    def is_special_key(params: Params) -> Any:
        p = parse_params(KeyParams, params)
        return _at(store, p.version).is_special_key(p.stream_id, p.key)

    def is_writer_of_key(params: Params) -> Any:
        p = parse_params(AccountKeyParams, params)
        return _at(store, p.version).is_writer_of_key(p.account, p.stream_id, p.key)

    def is_writer_of_stream(params: Params) -> Any:
        p = parse_params(AccountParams, params)
        return _at(store, p.version).is_writer_of_stream(p.account, p.stream_id)

    return {"kv_hasWritePermission": has_permission, "kv_isAdmin": is_admin, "kv_isSpecialKey": is_special_key,
            "kv_isWriterOfKey": is_writer_of_key, "kv_isWriterOfStream": is_writer_of_stream}


def kv_methods(store: KvStore, monitored: frozenset[bytes], status: Callable[[], dict[str, Any]]) -> dict[str, Method]:
    """Every ``kv_*`` method of a node that holds ``monitored`` streams."""

    def get_transaction_result(params: Params) -> Any:
        return store.result(parse_params(TxParams, params).tx_seq)

    return {
        "kv_getStatus": lambda params: True,
        "kv_getReplayStatus": lambda params: status(),
        "kv_getTransactionResult": get_transaction_result,
        "kv_getHoldingStreamIds": lambda params: ["0x" + s.hex() for s in sorted(monitored)],
        **read_methods(store),
        **permission_methods(store),
    }
