"""A KV transaction as it travels on the log: 0G's ``StreamData`` encoding and stream tags.

Rules (storage.md §6, "Encoding of a KV file"; 0G's TS SDK ``lib.esm/kv/types.js`` and the Go
client's ``kv/types.go`` write the same bytes):

* All integers are big-endian. The file is::

      u64 version
      u32 n_reads;  n_reads  x { streamId[32] | u24 keyLen | key }
      u32 n_writes; n_writes x { streamId[32] | u24 keyLen | key | u64 dataLen }
      <data of write 1> <data of write 2> ...     (concatenated in write order)
      u32 n_acl;    n_acl    x { u8 op | streamId[32] | [u24 keyLen | key] | [account[20]] }

* A key is 1 to ``2^24 - 1`` bytes; each list holds at most ``MAX_SET_SIZE`` items.
* An access-control op carries a key, an account, both (key first) or neither, by its code.
* A KV transaction is a log file whose ``Submission.tags`` are ``STREAM_DOMAIN`` followed by
  the 32-byte ids of the streams it writes or controls (``compute_stream_tags``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

from zgos.core.errors import ZgError

STREAM_ID_SIZE = 32
ADDRESS_SIZE = 20
VERSION_SIZE = 8
SET_LEN_SIZE = 4
KEY_LEN_SIZE = 3
DATA_LEN_SIZE = 8
OP_SIZE = 1
MAX_KEY_SIZE = (1 << 24) - 1  # bytes: what a u24 length holds
MAX_SET_SIZE = 1 << 16  # items per read, write or access-control list
NO_VERSION_CHECK = (1 << 64) - 1  # a version that disables the read-set check (0G's default)
STREAM_DOMAIN = hashlib.sha256(b"STREAM").digest()


class AclOp(IntEnum):
    """Access-control op codes; ``op & 0xF0`` is the op's category (storage.md §6)."""

    GRANT_ADMIN = 0x00
    RENOUNCE_ADMIN = 0x01
    SET_KEY_TO_SPECIAL = 0x10
    SET_KEY_TO_NORMAL = 0x11
    GRANT_WRITER = 0x20
    REVOKE_WRITER = 0x21
    RENOUNCE_WRITER = 0x22
    GRANT_SPECIAL_WRITER = 0x30
    REVOKE_SPECIAL_WRITER = 0x31
    RENOUNCE_SPECIAL_WRITER = 0x32


OPS_WITH_KEY = frozenset({
    AclOp.SET_KEY_TO_SPECIAL, AclOp.SET_KEY_TO_NORMAL,
    AclOp.GRANT_SPECIAL_WRITER, AclOp.REVOKE_SPECIAL_WRITER, AclOp.RENOUNCE_SPECIAL_WRITER,
})
OPS_WITH_ACCOUNT = frozenset({
    AclOp.GRANT_ADMIN, AclOp.GRANT_WRITER, AclOp.REVOKE_WRITER,
    AclOp.GRANT_SPECIAL_WRITER, AclOp.REVOKE_SPECIAL_WRITER,
})


class InvalidStreamData(ZgError):
    """Bytes that are not a KV transaction (truncated, an empty key, an unknown op...)."""


class ListTooLong(InvalidStreamData):
    """A read, write or access-control list longer than ``MAX_SET_SIZE``."""


@dataclass(frozen=True)
class StreamRead:
    stream_id: bytes
    key: bytes


@dataclass(frozen=True)
class StreamWrite:
    stream_id: bytes
    key: bytes
    data: bytes


@dataclass(frozen=True)
class AccessControl:
    """One op; ``key`` and ``account`` are None where the op carries none (``OPS_WITH_*``)."""

    op: AclOp
    stream_id: bytes
    key: bytes | None = None
    account: bytes | None = None


@dataclass(frozen=True)
class StreamData:
    version: int = NO_VERSION_CHECK
    reads: tuple[StreamRead, ...] = ()
    writes: tuple[StreamWrite, ...] = ()
    controls: tuple[AccessControl, ...] = field(default=())

    def stream_ids(self) -> tuple[bytes, ...]:
        """The streams this transaction writes or controls, first use first (its tags)."""
        ids = [w.stream_id for w in self.writes] + [c.stream_id for c in self.controls]
        return tuple(dict.fromkeys(ids))


# --- encoding ---------------------------------------------------------------------------


def _check_stream_id(stream_id: bytes) -> bytes:
    if len(stream_id) != STREAM_ID_SIZE:
        raise InvalidStreamData(f"a stream id is {STREAM_ID_SIZE} bytes, got {len(stream_id)}")
    return stream_id


def _encode_key(key: bytes) -> bytes:
    """``u24 keyLen | key``; a key is 1 to ``MAX_KEY_SIZE`` bytes."""
    if not 1 <= len(key) <= MAX_KEY_SIZE:
        raise InvalidStreamData(f"a key is 1 to {MAX_KEY_SIZE} bytes, got {len(key)}")
    return len(key).to_bytes(KEY_LEN_SIZE, "big") + key


def _encode_count(items: tuple[object, ...]) -> bytes:
    if len(items) > MAX_SET_SIZE:
        raise ListTooLong(f"at most {MAX_SET_SIZE} items per list, got {len(items)}")
    return len(items).to_bytes(SET_LEN_SIZE, "big")


def _encode_control(control: AccessControl) -> bytes:
    out = bytes([control.op]) + _check_stream_id(control.stream_id)
    if control.op in OPS_WITH_KEY:
        out += _encode_key(control.key or b"")
    if control.op in OPS_WITH_ACCOUNT:
        if control.account is None or len(control.account) != ADDRESS_SIZE:
            raise InvalidStreamData(f"{control.op.name} needs a {ADDRESS_SIZE}-byte account")
        out += control.account
    return out


def encode_stream_data(data: StreamData) -> bytes:
    """The bytes 0G's ``StreamData.encode()`` writes for ``data``."""
    if not 0 <= data.version <= NO_VERSION_CHECK:
        raise InvalidStreamData(f"version {data.version} is not a u64")
    parts = [data.version.to_bytes(VERSION_SIZE, "big"), _encode_count(data.reads)]
    parts += [_check_stream_id(r.stream_id) + _encode_key(r.key) for r in data.reads]
    parts.append(_encode_count(data.writes))
    parts += [_check_stream_id(w.stream_id) + _encode_key(w.key) + len(w.data).to_bytes(DATA_LEN_SIZE, "big")
              for w in data.writes]
    parts += [w.data for w in data.writes]
    parts.append(_encode_count(data.controls))
    parts += [_encode_control(c) for c in data.controls]
    return b"".join(parts)


# --- decoding ---------------------------------------------------------------------------


class _Reader:
    """Reads fields off the front of a transaction; running short is ``InvalidStreamData``."""

    def __init__(self, raw: bytes) -> None:
        self.raw = memoryview(raw)
        self.offset = 0

    def take(self, size: int) -> bytes:
        if size > len(self.raw) - self.offset:
            raise InvalidStreamData(f"the data ends at byte {len(self.raw)}, "
                                    f"{size} more bytes expected at byte {self.offset}")
        out = bytes(self.raw[self.offset:self.offset + size])
        self.offset += size
        return out

    def integer(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def count(self) -> int:
        n = self.integer(SET_LEN_SIZE)
        if n > MAX_SET_SIZE:
            raise ListTooLong(f"a list of {n} items (at most {MAX_SET_SIZE})")
        return n

    def key(self) -> bytes:
        size = self.integer(KEY_LEN_SIZE)
        if size == 0:
            raise InvalidStreamData(f"an empty key at byte {self.offset - KEY_LEN_SIZE}")
        return self.take(size)


def _decode_writes(reader: _Reader) -> tuple[StreamWrite, ...]:
    heads = [(reader.take(STREAM_ID_SIZE), reader.key(), reader.integer(DATA_LEN_SIZE))
             for _ in range(reader.count())]
    return tuple(StreamWrite(stream_id, key, reader.take(size)) for stream_id, key, size in heads)


def _decode_control(reader: _Reader) -> AccessControl:
    code = reader.integer(OP_SIZE)
    try:
        op = AclOp(code)
    except ValueError:
        raise InvalidStreamData(f"unknown access-control op 0x{code:02x}") from None
    stream_id = reader.take(STREAM_ID_SIZE)
    key = reader.key() if op in OPS_WITH_KEY else None
    account = reader.take(ADDRESS_SIZE) if op in OPS_WITH_ACCOUNT else None
    return AccessControl(op, stream_id, key, account)


def decode_stream_data(raw: bytes) -> StreamData:
    """Parse a KV transaction; raises ``InvalidStreamData`` (``ListTooLong``) as 0G's
    replayer reports ``DataParseError``. Bytes after the last op are ignored (the file's
    own length, not padding, bounds it)."""
    reader = _Reader(raw)
    version = reader.integer(VERSION_SIZE)
    reads = tuple(StreamRead(reader.take(STREAM_ID_SIZE), reader.key()) for _ in range(reader.count()))
    writes = _decode_writes(reader)
    controls = tuple(_decode_control(reader) for _ in range(reader.count()))
    return StreamData(version, reads, writes, controls)


# --- ids as text ------------------------------------------------------------------------


def parse_hex_id(text: str, size: int) -> bytes | None:
    """The ``size`` bytes of ``0x`` followed by ``2 * size`` hex digits (a stream id, an
    account), or None for anything else."""
    body = text.strip()
    if not body.lower().startswith("0x") or len(body) != 2 + 2 * size:
        return None
    try:
        return bytes.fromhex(body[2:])
    except ValueError:
        return None


# --- tags -------------------------------------------------------------------------------


def compute_stream_tags(stream_ids: tuple[bytes, ...]) -> bytes:
    """``STREAM_DOMAIN || id_1 || ... || id_n``: the ``Submission.tags`` of a KV transaction."""
    return STREAM_DOMAIN + b"".join(_check_stream_id(s) for s in stream_ids)


def parse_stream_tags(tags: bytes) -> tuple[bytes, ...] | None:
    """The stream ids a log file's tags name, or None if the file is not a KV transaction
    (tags not starting with ``STREAM_DOMAIN``, or not a whole number of 32-byte ids)."""
    if not tags.startswith(STREAM_DOMAIN) or len(tags) % STREAM_ID_SIZE:
        return None
    body = tags[len(STREAM_DOMAIN):]
    return tuple(body[i:i + STREAM_ID_SIZE] for i in range(0, len(body), STREAM_ID_SIZE))
