"""Replay: what one KV transaction does to the streams, given their state before it.

Rules (storage.md §6, "Access control" and "Transactions / optimistic concurrency"; 0G's
``stream_replayer.rs`` reaches the same outcomes):

* A transaction belongs to a KV node only if its tags name at least one stream and every one
  is monitored; otherwise the node skips it without a result.
* The sender must be able to write to at least one of the streams (``can_write``), else the
  result is ``SenderNoWritePermission``. Bytes that do not parse give ``DataParseError``.
* Read set: each stream must be monitored (``TagsMismatch``) and each key's latest version
  must not exceed the transaction's ``version`` (``VersionConfliction``).
* Write set, duplicates collapsed (the last write of a key wins): each stream must be in the
  tags (``TagsMismatch``), each key pass the version check, and the sender must have write
  permission (``WritePermissionDenied``).
* Access control: on a new stream the sender is granted admin first. Of the ops in one
  transaction, the last one per (category, stream, key, account) counts; a grant of admin to
  oneself or to someone already granted in the same transaction is dropped. Ops that need
  admin: grant admin, set key special/normal, revoke writer, revoke special writer. Granting a
  writer needs admin or stream writer; granting a special writer needs admin or writer of that
  key. Renounce ops act on the sender and need nothing. A failure is
  ``AccessControlPermissionDenied``.
* Only a ``Commit`` changes state; every other result leaves the streams as they were, and
  the next transaction replays as if this one had not happened (no stream is ever locked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zgos.kv.spec.stream import (
    ADDRESS_SIZE,
    NO_VERSION_CHECK,
    AccessControl,
    AclOp,
    InvalidStreamData,
    StreamData,
    StreamWrite,
    decode_stream_data,
)

ZERO_ACCOUNT = bytes(ADDRESS_SIZE)
COMMIT = "Commit"
DATA_PARSE_ERROR = "DataParseError"
VERSION_CONFLICTION = "VersionConfliction"
TAGS_MISMATCH = "TagsMismatch"
SENDER_NO_WRITE_PERMISSION = "SenderNoWritePermission"
WRITE_PERMISSION_DENIED = "WritePermissionDenied"
ACCESS_CONTROL_PERMISSION_DENIED = "AccessControlPermissionDenied"
DATA_UNAVAILABLE = "DataUnavailable"
KEY_SHOWN_CHARS = 32  # a key in a result is shown as its first 32 UTF-8 characters

OPS_NEEDING_ADMIN = frozenset({
    AclOp.GRANT_ADMIN, AclOp.SET_KEY_TO_SPECIAL, AclOp.SET_KEY_TO_NORMAL,
    AclOp.REVOKE_WRITER, AclOp.REVOKE_SPECIAL_WRITER,
})
RENOUNCE_OPS = frozenset({AclOp.RENOUNCE_ADMIN, AclOp.RENOUNCE_WRITER, AclOp.RENOUNCE_SPECIAL_WRITER})
OP_NAMES = {
    AclOp.GRANT_ADMIN: "GRANT_ADMIN_ROLE", AclOp.RENOUNCE_ADMIN: "RENOUNCE_ADMIN_ROLE",
    AclOp.SET_KEY_TO_SPECIAL: "SET_KEY_TO_SPECIAL", AclOp.SET_KEY_TO_NORMAL: "SET_KEY_TO_NORMAL",
    AclOp.GRANT_WRITER: "GRANT_WRITER_ROLE", AclOp.REVOKE_WRITER: "REVOKE_WRITER_ROLE",
    AclOp.RENOUNCE_WRITER: "RENOUNCE_WRITER_ROLE", AclOp.GRANT_SPECIAL_WRITER: "GRANT_SPECIAL_WRITER_ROLE",
    AclOp.REVOKE_SPECIAL_WRITER: "REVOKE_SPECIAL_WRITER_ROLE",
    AclOp.RENOUNCE_SPECIAL_WRITER: "RENOUNCE_SPECIAL_WRITER_ROLE",
}


@dataclass(frozen=True)
class KvTransaction:
    """What the log says about a KV file: its sequence number, submitter and tagged streams."""

    seq: int
    sender: bytes
    stream_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class AclRecord:
    """An access-control op as the state keeps it (``key`` b"" and ``account`` zero if none)."""

    op: AclOp
    stream_id: bytes
    key: bytes
    account: bytes
    operator: bytes


@dataclass(frozen=True)
class Commit:
    writes: tuple[StreamWrite, ...]
    controls: tuple[AclRecord, ...]
    result: str = COMMIT


@dataclass(frozen=True)
class Rejected:
    result: str


ReplayOutcome = Commit | Rejected


class KvView(Protocol):
    """The streams' state just before the transaction being replayed."""

    def latest_version(self, stream_id: bytes, key: bytes) -> int | None: ...
    def is_new_stream(self, stream_id: bytes) -> bool: ...
    def is_admin(self, account: bytes, stream_id: bytes) -> bool: ...
    def is_special_key(self, stream_id: bytes, key: bytes) -> bool: ...
    def is_writer_of_stream(self, account: bytes, stream_id: bytes) -> bool: ...
    def is_writer_of_key(self, account: bytes, stream_id: bytes, key: bytes) -> bool: ...
    def is_special_writer_of_any_key(self, account: bytes, stream_id: bytes) -> bool: ...


# --- permissions ------------------------------------------------------------------------


def is_open_to(view: KvView, account: bytes, stream_id: bytes) -> bool:
    """Whether ``account`` may write every key of ``stream_id``: a new stream, or its admin."""
    return view.is_new_stream(stream_id) or view.is_admin(account, stream_id)


def has_write_permission(view: KvView, account: bytes, stream_id: bytes, key: bytes) -> bool:
    """Anyone on a new stream; an admin; else a special key's writers or the stream's."""
    if is_open_to(view, account, stream_id):
        return True
    if view.is_special_key(stream_id, key):
        return view.is_writer_of_key(account, stream_id, key)
    return view.is_writer_of_stream(account, stream_id)


def can_write(view: KvView, account: bytes, stream_id: bytes) -> bool:
    """Whether ``account`` may write some key of ``stream_id``."""
    return (view.is_new_stream(stream_id) or view.is_admin(account, stream_id)
            or view.is_writer_of_stream(account, stream_id)
            or view.is_special_writer_of_any_key(account, stream_id))


# --- result strings (0G's wording) ------------------------------------------------------


def format_key(key: bytes) -> str:
    """A key in a result: ``NONE`` if empty, ``UNKNOWN`` if not UTF-8, else 32 characters."""
    if not key:
        return "NONE"
    try:
        return key.decode()[:KEY_SHOWN_CHARS]
    except UnicodeDecodeError:
        return "UNKNOWN"


def write_denied(stream_id: bytes, key: bytes) -> Rejected:
    return Rejected(f"{WRITE_PERMISSION_DENIED}: stream: 0x{stream_id.hex()}, key: {format_key(key)}")


def control_denied(record: AclRecord) -> Rejected:
    return Rejected(f"{ACCESS_CONTROL_PERMISSION_DENIED}: operation: {OP_NAMES[record.op]}, "
                    f"stream: 0x{record.stream_id.hex()}, key: {format_key(record.key)}, "
                    f"account: 0x{record.account.hex()}")


# --- the replay -------------------------------------------------------------------------


def is_conflicting(view: KvView, stream_id: bytes, key: bytes, version: int) -> bool:
    """Whether ``key`` was written after the snapshot ``version`` the transaction read
    (never, for ``NO_VERSION_CHECK``: no version is above it)."""
    if version >= NO_VERSION_CHECK:
        return False
    latest = view.latest_version(stream_id, key)
    return latest is not None and latest > version


def check_reads(data: StreamData, monitored: frozenset[bytes], view: KvView) -> Rejected | None:
    for read in data.reads:
        if read.stream_id not in monitored:
            return Rejected(TAGS_MISMATCH)
        if is_conflicting(view, read.stream_id, read.key, data.version):
            return Rejected(VERSION_CONFLICTION)
    return None


def compute_write_set(data: StreamData) -> tuple[StreamWrite, ...]:
    """The writes with duplicates collapsed: the last write of a (stream, key) wins."""
    last = {(w.stream_id, w.key): w for w in data.writes}
    return tuple(last.values())


def check_writes(tx: KvTransaction, data: StreamData, writes: tuple[StreamWrite, ...],
                 view: KvView) -> Rejected | None:
    open_to_sender = {s: is_open_to(view, tx.sender, s) for s in tx.stream_ids}  # asked once per stream
    checks_versions = data.version < NO_VERSION_CHECK  # else no key can conflict (``is_conflicting``)
    for write in writes:
        if write.stream_id not in open_to_sender:
            return Rejected(TAGS_MISMATCH)
        if checks_versions and is_conflicting(view, write.stream_id, write.key, data.version):
            return Rejected(VERSION_CONFLICTION)
        if not open_to_sender[write.stream_id] and not has_write_permission(view, tx.sender, write.stream_id, write.key):
            return write_denied(write.stream_id, write.key)
    return None


def _record(control: AccessControl, sender: bytes) -> AclRecord:
    account = sender if control.op in RENOUNCE_OPS else (control.account or ZERO_ACCOUNT)
    return AclRecord(control.op, control.stream_id, control.key or b"", account, sender)


def compute_control_set(tx: KvTransaction, data: StreamData, view: KvView) -> tuple[AclRecord, ...]:
    """The ops a commit records: admin for the sender on each new stream, then the
    transaction's ops, the last per (category, stream, key, account) counting."""
    ops: dict[tuple[int, bytes, bytes, bytes], AclRecord] = {}
    for stream_id in tx.stream_ids:
        if view.is_new_stream(stream_id):
            ops[(AclOp.GRANT_ADMIN & 0xF0, stream_id, b"", tx.sender)] = AclRecord(
                AclOp.GRANT_ADMIN, stream_id, b"", tx.sender, ZERO_ACCOUNT)
    for control in data.controls:
        record = _record(control, tx.sender)
        slot = (record.op & 0xF0, record.stream_id, record.key, record.account)
        if record.op != AclOp.GRANT_ADMIN or (slot not in ops and record.account != tx.sender):
            ops[slot] = record
    return tuple(ops.values())


def is_control_allowed(record: AclRecord, admin_of: frozenset[bytes], sender: bytes, view: KvView) -> bool:
    if record.op in OPS_NEEDING_ADMIN:
        return record.stream_id in admin_of
    if record.op == AclOp.GRANT_WRITER:
        return record.stream_id in admin_of or view.is_writer_of_stream(sender, record.stream_id)
    if record.op == AclOp.GRANT_SPECIAL_WRITER:
        return record.stream_id in admin_of or view.is_writer_of_key(sender, record.stream_id, record.key)
    return True  # renounce ops


def check_controls(tx: KvTransaction, controls: tuple[AclRecord, ...], view: KvView) -> Rejected | None:
    if not controls:
        return None
    admin_of = frozenset(s for s in tx.stream_ids if view.is_new_stream(s) or view.is_admin(tx.sender, s))
    for record in controls:
        if record.stream_id not in tx.stream_ids:
            return Rejected(TAGS_MISMATCH)
        if not is_control_allowed(record, admin_of, tx.sender, view):
            return control_denied(record)
    return None


def is_for_node(tx: KvTransaction, monitored: frozenset[bytes]) -> bool:
    """A node replays a transaction only if it names streams and monitors all of them."""
    return bool(tx.stream_ids) and all(s in monitored for s in tx.stream_ids)


def check_sender(tx: KvTransaction, view: KvView) -> Rejected | None:
    """``SenderNoWritePermission`` unless the sender may write to one of the streams (known
    before the transaction's data is fetched)."""
    if any(can_write(view, tx.sender, s) for s in tx.stream_ids):
        return None
    return Rejected(SENDER_NO_WRITE_PERMISSION)


def process_transaction(tx: KvTransaction, raw: bytes, monitored: frozenset[bytes],
                        view: KvView) -> ReplayOutcome:
    """The outcome of replaying ``tx`` (whose file holds ``raw``) on a node that monitors
    ``monitored``; call only for transactions ``is_for_node`` accepts."""
    if refused := check_sender(tx, view):
        return refused
    try:
        data = decode_stream_data(raw)
    except InvalidStreamData as exc:
        return Rejected(f"{DATA_PARSE_ERROR}: {exc}")
    writes = compute_write_set(data)
    controls = compute_control_set(tx, data, view)
    rejected = (check_reads(data, monitored, view) or check_writes(tx, data, writes, view)
                or check_controls(tx, controls, view))
    return rejected or Commit(writes, controls)
