"""Seeded random KV histories for the node tests: transactions from a few accounts mixing
writes, deletions, read sets with versions, access-control ops and, now and then, tags that do
not match the transaction's streams; and a plain model (``tests/unit/kv/model.py``) replayed
alongside, with snapshots of it at chosen sequence numbers."""

from __future__ import annotations

import base64
import copy
import random
from dataclasses import dataclass, field
from typing import Any

from tests.unit.kv.model import PlainModel
from zgos.kv.spec.stream import (
    NO_VERSION_CHECK,
    OPS_WITH_ACCOUNT,
    OPS_WITH_KEY,
    AccessControl,
    AclOp,
    StreamData,
    StreamRead,
    StreamWrite,
)

KEYS = (b"k1", b"k2", b"k3", b"\xffbin")
RECENT_VERSIONS = 6  # read-set versions are drawn among the last few sequence numbers
STREAM_WEIGHTS = (12, 5, 1)
# grants more often than revocations and renouncements, so that roles build up
OP_WEIGHTS = {op: 1 for op in AclOp} | {AclOp.GRANT_WRITER: 6, AclOp.GRANT_ADMIN: 3, AclOp.GRANT_SPECIAL_WRITER: 4,
                                         AclOp.SET_KEY_TO_SPECIAL: 2}


@dataclass(frozen=True)
class RandomTx:
    sender: int  # index of the sending account
    data: StreamData
    tags: tuple[bytes, ...]  # the streams the log entry is tagged with


@dataclass
class History:
    """Random transactions over ``streams`` (the first ``monitored`` ones are the node's)."""

    rng: random.Random
    streams: tuple[bytes, ...]
    accounts: tuple[bytes, ...]
    monitored: int = 2

    def _stream(self) -> bytes:
        # weighted towards the first stream, so that roles on it matter; the others are rarer
        return self.rng.choices(self.streams, weights=STREAM_WEIGHTS[:len(self.streams)])[0]

    def _control(self) -> AccessControl:
        op = self.rng.choices(list(OP_WEIGHTS), weights=list(OP_WEIGHTS.values()))[0]
        return AccessControl(op, self._stream(), self.rng.choice(KEYS) if op in OPS_WITH_KEY else None,
                             self.rng.choice(self.accounts) if op in OPS_WITH_ACCOUNT else None)

    def _value(self) -> bytes:
        return b"" if self.rng.random() < 0.15 else self.rng.randbytes(self.rng.randint(1, 40))

    def next(self, seq: int) -> RandomTx:
        """A transaction for log position ``seq``."""
        rng = self.rng
        version = NO_VERSION_CHECK if rng.random() < 0.5 else rng.randint(max(0, seq - RECENT_VERSIONS), seq)
        data = StreamData(
            version,
            tuple(StreamRead(self._stream(), rng.choice(KEYS)) for _ in range(rng.randint(0, 2))),
            tuple(StreamWrite(self._stream(), rng.choice(KEYS), self._value()) for _ in range(rng.randint(0, 3))),
            tuple(self._control() for _ in range(rng.choice((0, 0, 1, 2)))),
        )
        tags = data.stream_ids()
        if not tags or rng.random() < 0.08:
            tags = tuple(rng.sample(self.streams, rng.randint(1, 2)))
        return RandomTx(rng.randrange(len(self.accounts)), data, tags)


@dataclass
class ModelRun:
    """The plain model replaying a history, with a copy of it kept at each of ``checkpoints``."""

    model: PlainModel
    results: dict[int, str | None] = field(default_factory=dict)
    snapshots: dict[int, PlainModel] = field(default_factory=dict)

    def replay(self, seq: int, sender: bytes, tx: RandomTx) -> None:
        self.results[seq] = self.model.replay(seq, sender, tx.tags, tx.data)

    def snapshot(self, seq: int) -> None:
        self.snapshots[seq] = copy.deepcopy(self.model)


def expected_value(model: PlainModel, stream: bytes, key: bytes) -> tuple[int, bytes] | None:
    """What ``kv_getValue`` should answer, as (version, bytes); None for a key never written."""
    return model.values.get((stream, key))


def node_value(answer: dict[str, Any]) -> tuple[int, bytes] | None:
    if int(answer["version"]) == 0 and int(answer["size"]) == 0:
        return None
    return int(answer["version"]), base64.b64decode(answer["data"])


def normalised(value: tuple[int, bytes] | None) -> tuple[int, bytes] | None:
    """A deletion at sequence 0 reads like a key never written (version 0, size 0)."""
    return None if value == (0, b"") else value


Call = Any  # call(method, *params) -> the JSON-RPC result


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def assert_node_matches_model(call: Call, model: PlainModel, streams: tuple[bytes, ...],
                              accounts: tuple[bytes, ...], version: int | None = None) -> None:
    """Every key's value and version, the key order of ``kv_getFirst``/``kv_getNext``, and every
    role of every account, as the node answers them (as of ``version``) and as the model says."""
    at = [] if version is None else [version]
    for stream in streams:
        sid = "0x" + stream.hex()
        for key in KEYS:
            answer = call("kv_getValue", sid, b64(key), 0, 1024, *at)
            assert node_value(answer) == normalised(expected_value(model, stream, key)), (stream.hex()[:8], key)
            assert call("kv_isSpecialKey", sid, b64(key), *at) == (key in model.special[stream])
        listed, found = [], call("kv_getFirst", sid, 0, 0, *at)
        while found is not None:
            listed.append(found["key"])
            found = call("kv_getNext", sid, found["key"], 0, 0, False, *at)
        assert listed == [b64(k) for k in sorted(k for (s, k) in model.values if s == stream)]
        for who in accounts:
            account = "0x" + who.hex()
            assert call("kv_isAdmin", account, sid, *at) == (stream in model.started and who in model.admins[stream])
            assert call("kv_isWriterOfStream", account, sid, *at) == (who in model.writers[stream])
            for key in KEYS:
                assert call("kv_isWriterOfKey", account, sid, b64(key), *at) == model.key_writer(who, stream, key)
                assert call("kv_hasWritePermission", account, sid, b64(key), *at) == model.may_write(who, stream, key)
