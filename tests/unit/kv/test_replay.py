"""Replay rules: named cases from storage.md §6, and random histories against a plain model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.kv.model import PlainModel
from zgos.kv.spec.replay import (
    Commit,
    KvTransaction,
    Rejected,
    is_for_node,
    process_transaction,
)
from zgos.kv.spec.state import MemoryState
from zgos.kv.spec.stream import (
    NO_VERSION_CHECK,
    OPS_WITH_ACCOUNT,
    OPS_WITH_KEY,
    AccessControl,
    AclOp,
    StreamData,
    StreamRead,
    StreamWrite,
    encode_stream_data,
)

S1, S2, UNMONITORED = b"\x01" * 32, b"\x02" * 32, b"\x09" * 32
MONITORED = frozenset({S1, S2})
ALICE, BOB, CAROL = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
KEYS = (b"k1", b"k2", b"k3")


class Node:
    """The spec's replay over ``MemoryState``, one transaction after another."""

    def __init__(self) -> None:
        self.state = MemoryState()
        self.seq = 0

    def send(self, sender: bytes, data: StreamData, streams: tuple[bytes, ...] | None = None) -> str | None:
        tx = KvTransaction(self.seq, sender, data.stream_ids() if streams is None else streams)
        self.seq += 1
        if not is_for_node(tx, MONITORED):
            return None
        outcome = process_transaction(tx, encode_stream_data(data), MONITORED, self.state.at())
        if isinstance(outcome, Commit):
            self.state.apply(tx.seq, outcome)
        return outcome.result

    def value(self, stream: bytes, key: bytes) -> bytes | None:
        entry = self.state.at().get(stream, key)
        return None if entry is None else entry.data


def put(stream: bytes, key: bytes, value: bytes, version: int = NO_VERSION_CHECK) -> StreamData:
    return StreamData(version, writes=(StreamWrite(stream, key, value),))


def control(op: AclOp, stream: bytes, key: bytes | None = None, account: bytes | None = None) -> StreamData:
    return StreamData(controls=(AccessControl(op, stream, key, account),))


def test_a_writer_without_permission_an_acl_op_by_a_non_admin_and_a_stale_read_set_version_each_fail_untouched() -> None:
    node = Node()
    assert node.send(ALICE, put(S1, b"k", b"alice's")) == "Commit"  # first writer: admin
    before = (dict(node.state.writes), list(node.state.controls))

    assert node.send(BOB, put(S1, b"k", b"bob's")) == "SenderNoWritePermission"
    assert node.send(BOB, control(AclOp.GRANT_WRITER, S1, account=BOB)) == "SenderNoWritePermission"
    assert node.send(ALICE, control(AclOp.GRANT_WRITER, S1, account=BOB)) == "Commit"
    assert node.send(ALICE, put(S1, b"k", b"alice's again")) == "Commit"  # after Bob read k at version 0
    before = (dict(node.state.writes), list(node.state.controls))
    refused = node.send(BOB, control(AclOp.SET_KEY_TO_SPECIAL, S1, key=b"k"))
    assert refused is not None and refused.startswith("AccessControlPermissionDenied: operation: SET_KEY_TO_SPECIAL")
    stale = StreamData(0, reads=(StreamRead(S1, b"k"),), writes=(StreamWrite(S1, b"other", b"x"),))
    assert node.send(BOB, stale) == "VersionConfliction"
    assert (dict(node.state.writes), list(node.state.controls)) == before
    assert node.value(S1, b"k") == b"alice's again"


def test_a_special_key_takes_its_own_writers_and_the_denial_names_stream_and_key() -> None:
    node = Node()
    node.send(ALICE, put(S1, b"open", b"1"))
    node.send(ALICE, StreamData(controls=(AccessControl(AclOp.GRANT_WRITER, S1, None, BOB),
                                          AccessControl(AclOp.SET_KEY_TO_SPECIAL, S1, b"vip", None))))
    assert node.send(BOB, put(S1, b"open", b"2")) == "Commit"
    assert node.send(BOB, put(S1, b"vip", b"x")) == f"WritePermissionDenied: stream: 0x{S1.hex()}, key: vip"
    node.send(ALICE, control(AclOp.GRANT_SPECIAL_WRITER, S1, key=b"vip", account=CAROL))
    assert node.send(CAROL, put(S1, b"vip", b"carol")) == "Commit"
    assert node.send(CAROL, put(S1, b"open", b"no")).startswith("WritePermissionDenied")


def test_a_failed_transaction_is_reported_and_later_ones_on_the_stream_apply() -> None:
    node = Node()
    node.send(ALICE, put(S1, b"k", b"v1"))
    garbage = KvTransaction(node.seq, ALICE, (S1,))
    outcome = process_transaction(garbage, b"\x00" * 7, MONITORED, node.state.at())
    assert isinstance(outcome, Rejected) and outcome.result.startswith("DataParseError: ")
    node.seq += 1
    assert node.send(ALICE, put(S1, b"k", b"v2", version=0)) == "Commit"  # version 0 = the first tx
    assert node.value(S1, b"k") == b"v2"


def test_writes_to_an_untagged_stream_or_unmonitored_reads_are_tags_mismatches() -> None:
    node = Node()
    assert node.send(ALICE, put(S2, b"k", b"v"), streams=(S1,)) == "TagsMismatch"
    read_elsewhere = StreamData(reads=(StreamRead(UNMONITORED, b"k"),), writes=(StreamWrite(S1, b"k", b"v"),))
    assert node.send(ALICE, read_elsewhere) == "TagsMismatch"
    assert node.send(ALICE, put(UNMONITORED, b"k", b"v")) is None  # not this node's transaction


def test_renouncing_admin_leaves_the_stream_without_one() -> None:
    node = Node()
    node.send(ALICE, StreamData(writes=(StreamWrite(S1, b"k", b"v"),),
                                controls=(AccessControl(AclOp.GRANT_WRITER, S1, None, BOB),)))
    node.send(ALICE, control(AclOp.RENOUNCE_ADMIN, S1))
    assert not node.state.at().is_admin(ALICE, S1)
    assert node.send(ALICE, put(S1, b"k", b"again")) == "SenderNoWritePermission"
    assert node.send(BOB, put(S1, b"k", b"bob")) == "Commit"


def test_reads_as_of_an_older_version_see_the_older_value() -> None:
    node = Node()
    node.send(ALICE, put(S1, b"k", b"old"))
    node.send(ALICE, put(S1, b"k", b""))  # a deletion: size 0
    assert node.state.at(0).get(S1, b"k").data == b"old"  # type: ignore[union-attr]
    assert node.state.at().get(S1, b"k").data == b""  # type: ignore[union-attr]


# --- random histories -------------------------------------------------------------------

# Weighted so that histories revisit one stream often enough for roles to matter.
streams = st.sampled_from([S1, S1, S1, S1, S2, S2, UNMONITORED])
accounts = st.sampled_from([ALICE, BOB, CAROL])
keys = st.sampled_from(KEYS)


@st.composite
def controls(draw: st.DrawFn) -> AccessControl:
    op = draw(st.sampled_from(list(AclOp)))
    return AccessControl(op, draw(streams), draw(keys) if op in OPS_WITH_KEY else None,
                         draw(accounts) if op in OPS_WITH_ACCOUNT else None)


@st.composite
def transactions(draw: st.DrawFn, seq: int) -> tuple[bytes, StreamData, tuple[bytes, ...] | None]:
    version = draw(st.one_of(st.just(NO_VERSION_CHECK), st.integers(0, max(seq, 0))))
    data = StreamData(
        version,
        tuple(draw(st.lists(st.builds(StreamRead, streams, keys), max_size=2))),
        tuple(draw(st.lists(st.builds(StreamWrite, streams, keys, st.binary(max_size=3)), max_size=3))),
        tuple(draw(st.lists(controls(), max_size=3))),
    )
    odd_tags = draw(st.integers(0, 9)) == 0
    tags = draw(st.lists(streams, min_size=1, max_size=2, unique=True).map(tuple)) if odd_tags else None
    return draw(accounts), data, tags


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_histories_from_3_accounts_replay_as_the_plain_model(draw: st.DataObject) -> None:
    node, model = Node(), PlainModel(MONITORED)
    for seq in range(draw.draw(st.integers(1, 60))):
        sender, data, tags = draw.draw(transactions(seq))
        streams_of = data.stream_ids() if tags is None else tags
        ours = node.send(sender, data, tags)
        theirs = model.replay(seq, sender, streams_of, data)
        assert (ours or "").split(":")[0] == (theirs or ""), (seq, data)
    assert_same_state(node, model)


def assert_same_state(node: Node, model: PlainModel) -> None:
    view = node.state.at()
    for stream in (S1, S2):
        for key in KEYS:
            entry = view.get(stream, key)
            assert (None if entry is None else (entry.version, entry.data)) == model.values.get((stream, key))
            assert view.is_special_key(stream, key) == (key in model.special[stream])
        for who in (ALICE, BOB, CAROL):
            assert view.is_admin(who, stream) == (stream in model.started and who in model.admins[stream])
            assert view.is_writer_of_stream(who, stream) == (who in model.writers[stream])
            for key in KEYS:
                assert view.is_writer_of_key(who, stream, key) == model.key_writer(who, stream, key)


def test_a_writer_may_grant_writers_but_only_an_admin_may_revoke_them() -> None:
    node = Node()
    node.send(ALICE, control(AclOp.GRANT_WRITER, S1, account=BOB))
    assert node.send(BOB, control(AclOp.GRANT_WRITER, S1, account=CAROL)) == "Commit"
    refused = node.send(BOB, control(AclOp.REVOKE_WRITER, S1, account=CAROL))
    assert refused is not None and refused.startswith("AccessControlPermissionDenied: operation: REVOKE_WRITER_ROLE")
    assert node.send(ALICE, control(AclOp.REVOKE_WRITER, S1, account=CAROL)) == "Commit"
    assert not node.state.at().is_writer_of_stream(CAROL, S1)
