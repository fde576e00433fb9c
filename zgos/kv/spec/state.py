"""The streams' state as a history: every committed write and access-control op with the
version (transaction sequence number) that made it, read as of any version.

Rules (storage.md §6; the queries of 0G's ``sqlite_db_statements.rs``):

* A key's value as of version ``v`` is its write with the greatest version ``<= v``; a write of
  no bytes is a deletion (reads return size 0, as 0G's ``kv_getValue`` does).
* A stream is new as of ``v`` while no access-control op at or before ``v`` names it.
* Each role is the latest relevant op at or before ``v``: admin (grant / renounce admin),
  special key (set special / set normal), stream writer (grant / revoke / renounce writer),
  writer of a key (grant / revoke / renounce special writer).

``MemoryState`` keeps this history in memory. The KV node keeps the same history in SQLite;
tests hold the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from zgos.kv.spec.replay import AclRecord, Commit
from zgos.kv.spec.stream import AclOp

LATEST = (1 << 64) - 1  # "as of the newest version"

ADMIN_OPS = frozenset({AclOp.GRANT_ADMIN, AclOp.RENOUNCE_ADMIN})
KEY_KIND_OPS = frozenset({AclOp.SET_KEY_TO_SPECIAL, AclOp.SET_KEY_TO_NORMAL})
STREAM_WRITER_OPS = frozenset({AclOp.GRANT_WRITER, AclOp.REVOKE_WRITER, AclOp.RENOUNCE_WRITER})
KEY_WRITER_OPS = frozenset({AclOp.GRANT_SPECIAL_WRITER, AclOp.REVOKE_SPECIAL_WRITER, AclOp.RENOUNCE_SPECIAL_WRITER})


@dataclass(frozen=True)
class Entry:
    """A key's value as of some version: the version that wrote it and its bytes."""

    key: bytes
    version: int
    data: bytes


def latest_op(history: Iterable[tuple[int, AclRecord]], ops: frozenset[AclOp], version: int) -> AclOp | None:
    """The op of the newest record among ``ops`` at or before ``version``."""
    found = [(v, r.op) for v, r in history if v <= version and r.op in ops]
    return max(found, key=lambda item: item[0])[1] if found else None


@dataclass
class MemoryState:
    """Committed history, in memory; ``at(version)`` is a ``KvView`` for replay and reads."""

    writes: dict[tuple[bytes, bytes], list[tuple[int, bytes]]] = field(default_factory=dict)
    controls: list[tuple[int, AclRecord]] = field(default_factory=list)

    def apply(self, seq: int, commit: Commit) -> None:
        """Record a committed transaction at version ``seq`` (versions only grow)."""
        for write in commit.writes:
            self.writes.setdefault((write.stream_id, write.key), []).append((seq, write.data))
        self.controls.extend((seq, record) for record in commit.controls)

    def at(self, version: int = LATEST) -> StateAt:
        return StateAt(self, version)


@dataclass(frozen=True)
class StateAt:
    """The state as of ``version``."""

    state: MemoryState
    version: int

    def get(self, stream_id: bytes, key: bytes) -> Entry | None:
        history = [(v, d) for v, d in self.state.writes.get((stream_id, key), []) if v <= self.version]
        if not history:
            return None
        version, data = max(history, key=lambda item: item[0])
        return Entry(key, version, data)

    def keys(self, stream_id: bytes) -> list[bytes]:
        """Every key of the stream written at or before this version, in byte order."""
        return sorted(k for (s, k) in self.state.writes if s == stream_id and self.get(s, k) is not None)

    def latest_version(self, stream_id: bytes, key: bytes) -> int | None:
        entry = self.get(stream_id, key)
        return None if entry is None else entry.version

    def _ops(self, stream_id: bytes, *, key: bytes | None = None,
             account: bytes | None = None) -> list[tuple[int, AclRecord]]:
        return [(v, r) for v, r in self.state.controls
                if r.stream_id == stream_id and (key is None or r.key == key)
                and (account is None or r.account == account)]

    def is_new_stream(self, stream_id: bytes) -> bool:
        return not any(v <= self.version for v, _ in self._ops(stream_id))

    def is_admin(self, account: bytes, stream_id: bytes) -> bool:
        return latest_op(self._ops(stream_id, account=account), ADMIN_OPS, self.version) == AclOp.GRANT_ADMIN

    def is_special_key(self, stream_id: bytes, key: bytes) -> bool:
        return latest_op(self._ops(stream_id, key=key), KEY_KIND_OPS, self.version) == AclOp.SET_KEY_TO_SPECIAL

    def is_writer_of_stream(self, account: bytes, stream_id: bytes) -> bool:
        ops = self._ops(stream_id, account=account)
        return latest_op(ops, STREAM_WRITER_OPS, self.version) == AclOp.GRANT_WRITER

    def is_writer_of_key(self, account: bytes, stream_id: bytes, key: bytes) -> bool:
        ops = self._ops(stream_id, key=key, account=account)
        return latest_op(ops, KEY_WRITER_OPS, self.version) == AclOp.GRANT_SPECIAL_WRITER

    def is_special_writer_of_any_key(self, account: bytes, stream_id: bytes) -> bool:
        keys = {r.key for _, r in self._ops(stream_id, account=account) if r.op in KEY_WRITER_OPS}
        return any(self.is_writer_of_key(account, stream_id, key) for key in keys)
