"""A plain model of KV streams for property tests: the latest state only, held in sets and
dicts, with storage.md §6's rules written out directly. It shares no code with
``zgos.kv.spec.replay`` or ``zgos.kv.spec.state``; both are held to its answers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from zgos.kv.spec.stream import AclOp, StreamData

Slot = tuple[int, bytes, bytes, bytes]


@dataclass
class PlainModel:
    monitored: frozenset[bytes]
    values: dict[tuple[bytes, bytes], tuple[int, bytes]] = field(default_factory=dict)
    started: set[bytes] = field(default_factory=set)  # streams with any access-control op
    admins: defaultdict[bytes, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    writers: defaultdict[bytes, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    special: defaultdict[bytes, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    key_writers: defaultdict[tuple[bytes, bytes], set[bytes]] = field(default_factory=lambda: defaultdict(set))

    # --- roles, as of now ---

    def admin(self, who: bytes, s: bytes) -> bool:
        return s not in self.started or who in self.admins[s]

    def key_writer(self, who: bytes, s: bytes, k: bytes) -> bool:
        return who in self.key_writers[(s, k)]

    def may_write(self, who: bytes, s: bytes, k: bytes) -> bool:
        if self.admin(who, s):
            return True
        return self.key_writer(who, s, k) if k in self.special[s] else who in self.writers[s]

    def may_write_something(self, who: bytes, s: bytes) -> bool:
        return (self.admin(who, s) or who in self.writers[s]
                or any(who in ws for (s2, _), ws in self.key_writers.items() if s2 == s))

    # --- a transaction ---

    def replay(self, seq: int, sender: bytes, streams: tuple[bytes, ...], data: StreamData) -> str | None:
        if not streams or not set(streams) <= self.monitored:
            return None
        if not any(self.may_write_something(sender, s) for s in streams):
            return "SenderNoWritePermission"
        for r in data.reads:
            if r.stream_id not in self.monitored:
                return "TagsMismatch"
            if self.values.get((r.stream_id, r.key), (-1, b""))[0] > data.version:
                return "VersionConfliction"
        writes = {(w.stream_id, w.key): w.data for w in data.writes}
        for (s, k) in writes:
            if s not in streams:
                return "TagsMismatch"
            if self.values.get((s, k), (-1, b""))[0] > data.version:
                return "VersionConfliction"
            if not self.may_write(sender, s, k):
                return "WritePermissionDenied"
        ops = self.final_ops(sender, streams, data)
        refusal = self.check_ops(sender, streams, ops)
        if refusal:
            return refusal
        for (s, k), value in writes.items():
            self.values[(s, k)] = (seq, value)
        for op, s, k, who in ops.values():
            self.apply_op(op, s, k, who)
        return "Commit"

    def final_ops(self, sender: bytes, streams: tuple[bytes, ...], data: StreamData) -> dict[Slot, tuple[AclOp, bytes, bytes, bytes]]:
        ops: dict[Slot, tuple[AclOp, bytes, bytes, bytes]] = {}
        for s in streams:
            if s not in self.started:
                ops[(0x00, s, b"", sender)] = (AclOp.GRANT_ADMIN, s, b"", sender)
        for c in data.controls:
            renounce = c.op in (AclOp.RENOUNCE_ADMIN, AclOp.RENOUNCE_WRITER, AclOp.RENOUNCE_SPECIAL_WRITER)
            who = sender if renounce else (c.account or bytes(20))
            slot = (c.op & 0xF0, c.stream_id, c.key or b"", who)
            if c.op == AclOp.GRANT_ADMIN and (slot in ops or who == sender):
                continue
            ops[slot] = (c.op, c.stream_id, c.key or b"", who)
        return ops

    def check_ops(self, sender: bytes, streams: tuple[bytes, ...], ops: dict[Slot, tuple[AclOp, bytes, bytes, bytes]]) -> str | None:
        for op, s, k, _ in ops.values():
            if s not in streams:
                return "TagsMismatch"
            admin = self.admin(sender, s)
            needs_admin = op in (AclOp.GRANT_ADMIN, AclOp.SET_KEY_TO_SPECIAL, AclOp.SET_KEY_TO_NORMAL,
                                 AclOp.REVOKE_WRITER, AclOp.REVOKE_SPECIAL_WRITER)
            if needs_admin and not admin:
                return "AccessControlPermissionDenied"
            if op == AclOp.GRANT_WRITER and not (admin or sender in self.writers[s]):
                return "AccessControlPermissionDenied"
            if op == AclOp.GRANT_SPECIAL_WRITER and not (admin or self.key_writer(sender, s, k)):
                return "AccessControlPermissionDenied"
        return None

    def apply_op(self, op: AclOp, s: bytes, k: bytes, who: bytes) -> None:
        self.started.add(s)
        change = {
            AclOp.GRANT_ADMIN: lambda: self.admins[s].add(who),
            AclOp.RENOUNCE_ADMIN: lambda: self.admins[s].discard(who),
            AclOp.SET_KEY_TO_SPECIAL: lambda: self.special[s].add(k),
            AclOp.SET_KEY_TO_NORMAL: lambda: self.special[s].discard(k),
            AclOp.GRANT_WRITER: lambda: self.writers[s].add(who),
            AclOp.REVOKE_WRITER: lambda: self.writers[s].discard(who),
            AclOp.RENOUNCE_WRITER: lambda: self.writers[s].discard(who),
            AclOp.GRANT_SPECIAL_WRITER: lambda: self.key_writers[(s, k)].add(who),
            AclOp.REVOKE_SPECIAL_WRITER: lambda: self.key_writers[(s, k)].discard(who),
            AclOp.RENOUNCE_SPECIAL_WRITER: lambda: self.key_writers[(s, k)].discard(who),
        }
        change[op]()
