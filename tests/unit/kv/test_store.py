"""The KV node's store (a SQLite row per transaction, an index in memory) against the spec's
``MemoryState``: every read as of every version, through commits, rolled-back batches,
rewinds (reorganisations) and reopening the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.kv.node.index import KeyIndex, Location
from zgos.kv.node.layout import InvalidRow, compute_row, parse_row_writes
from zgos.kv.node.store import KvStore, StoreAt
from zgos.kv.spec.replay import AclRecord, Commit
from zgos.kv.spec.state import LATEST, Entry, MemoryState, StateAt
from zgos.kv.spec.stream import AclOp, StreamWrite

S1, S2 = b"\x01" * 32, b"\x02" * 32
KEYS = (b"a", b"ab", b"b", b"c")
PROBES = (b"", b"a", b"aa", b"b", b"bz", b"c", b"d")  # keys to read around, stored or not
BLOCKS_PER_SEQ = 2  # entry ``seq`` is in block ``seq // 2``


class ModelAt:
    """``StateAt`` with the iteration reads of the store, derived from its sorted keys."""

    def __init__(self, state: StateAt) -> None:
        self.state = state

    def get(self, stream_id: bytes, key: bytes) -> Entry | None:
        return self.state.get(stream_id, key)

    def latest_version(self, stream_id: bytes, key: bytes) -> int | None:
        return self.state.latest_version(stream_id, key)

    def page(self, stream_id: bytes, start: bytes, inclusive: bool, limit: int) -> list[Entry]:
        keys = [k for k in self.state.keys(stream_id) if k > start or (inclusive and k == start)]
        return [e for k in keys[:limit] if (e := self.get(stream_id, k)) is not None]

    def next(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        return next(iter(self.page(stream_id, key, inclusive, 1)), None)

    def prev(self, stream_id: bytes, key: bytes, inclusive: bool) -> Entry | None:
        keys = [k for k in self.state.keys(stream_id) if k < key or (inclusive and k == key)]
        return self.get(stream_id, keys[-1]) if keys else None

    def first(self, stream_id: bytes) -> Entry | None:
        return self.next(stream_id, b"", True)

    def last(self, stream_id: bytes) -> Entry | None:
        keys = self.state.keys(stream_id)
        return self.get(stream_id, keys[-1]) if keys else None


def answers(view: StoreAt | ModelAt) -> dict[tuple[object, ...], object]:
    """Every read of both streams, around every probe key."""
    found: dict[tuple[object, ...], object] = {}
    for s in (S1, S2):
        found[("first", s)], found[("last", s)] = view.first(s), view.last(s)
        for key in PROBES:
            found[("get", s, key)] = view.get(s, key)
            found[("latest", s, key)] = view.latest_version(s, key)
            for inclusive in (False, True):
                found[("next", s, key, inclusive)] = view.next(s, key, inclusive)
                found[("prev", s, key, inclusive)] = view.prev(s, key, inclusive)
                found[("page", s, key, inclusive)] = view.page(s, key, inclusive, 3)
    return found


def index_contents(index: KeyIndex) -> dict[bytes, tuple[dict[bytes, list[Location]], list[bytes]]]:
    """Each stream's keys with their locations (a lone one as a list of one), and its key order."""
    return {s: ({k: h if isinstance(h, list) else [h] for k, h in keys.histories.items() if h},
                list(keys.sorted_keys()))
            for s, keys in index.streams.items() if keys.histories}


class Pair:
    """A store and the model fed the same commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = KvStore(path, 0)
        self.commits: list[tuple[int, Commit]] = []
        self.seq = 0

    def model(self) -> MemoryState:
        state = MemoryState()
        for seq, commit in self.commits:
            state.apply(seq, commit)
        return state

    def commit(self, writes: list[tuple[bytes, bytes, bytes]]) -> None:
        commit = Commit(tuple({(s, k): StreamWrite(s, k, v) for s, k, v in writes}.values()), ())
        self.store.record(self.seq, self.seq // BLOCKS_PER_SEQ, "Commit", commit)
        self.commits.append((self.seq, commit))
        self.seq += 1

    def rewind(self, block: int) -> None:
        self.store.rewind(block, None)
        dropped = [seq for seq in range(self.seq) if seq // BLOCKS_PER_SEQ >= block]
        if dropped:
            self.seq = dropped[0]
            self.commits = [(seq, c) for seq, c in self.commits if seq < self.seq]

    def reopen(self) -> None:
        self.store.close()
        self.store = KvStore(self.path, 0)

    def assert_same_answers(self) -> None:
        model = self.model()
        for version in [*range(-1, self.seq + 1), LATEST]:
            assert answers(self.store.at(version)) == answers(ModelAt(model.at(version))), version
        assert index_contents(self.store.index) == index_contents(self.store.load_index())


def rolled_back_batch(pair: Pair, batch: list[list[tuple[bytes, bytes, bytes]]]) -> None:
    """Record ``batch`` in one store transaction, check that its own reads see it, then fail."""
    before = (pair.seq, list(pair.commits))
    with pytest.raises(RuntimeError), pair.store.transaction():
        for writes in batch:
            pair.commit(writes)
        assert answers(pair.store.at()) == answers(ModelAt(pair.model().at()))
        raise RuntimeError("the batch fails")
    pair.seq, pair.commits = before


WRITES = [(S1, b"a", b"1"), (S1, b"b", b"2"), (S2, b"a", b"3")]


def test_a_rolled_back_batch_leaves_the_index_unchanged(tmp_path: Path) -> None:
    pair = Pair(tmp_path / "kv.sqlite")
    pair.commit(WRITES)
    pair.commit([(S1, b"a", b""), (S1, b"c", b"4")])
    index, found = index_contents(pair.store.index), answers(pair.store.at())
    rolled_back_batch(pair, [[(S1, b"a", b"5"), (S1, b"ab", b"6")], [(S2, b"b", b"7")]])
    assert index_contents(pair.store.index) == index
    assert answers(pair.store.at()) == found
    pair.commit([(S1, b"ab", b"8")])  # the rolled-back entries' seqs are free again
    pair.assert_same_answers()


def test_reopening_the_store_rebuilds_the_same_answers(tmp_path: Path) -> None:
    pair = Pair(tmp_path / "kv.sqlite")
    pair.commit(WRITES)
    pair.store.record(pair.seq, 0, None)  # an entry that is not this node's
    pair.seq += 1
    pair.commit([(S1, b"a", b""), (S2, b"c", b"x" * 1000), (S1, b"ab", b"9")])
    found = {version: answers(pair.store.at(version)) for version in (0, 1, 2, LATEST)}
    pair.reopen()
    assert {version: answers(pair.store.at(version)) for version in (0, 1, 2, LATEST)} == found
    pair.assert_same_answers()


def test_a_rewind_drops_versions_from_the_index(tmp_path: Path) -> None:
    pair = Pair(tmp_path / "kv.sqlite")
    for value in (b"1", b"2", b"3", b"4"):  # seqs 0..3, blocks 0, 0, 1, 1
        pair.commit([(S1, b"a", value), (S1, value, value)])
    pair.rewind(1)
    assert pair.store.at().get(S1, b"a") == Entry(b"a", 1, b"2")
    assert pair.store.at().latest_version(S1, b"3") is None
    assert [e.key for e in pair.store.at().page(S1, b"", True, 10)] == [b"1", b"2", b"a"]
    pair.assert_same_answers()
    pair.reopen()
    pair.assert_same_answers()


def test_a_rewind_in_a_transaction_that_rolls_back_leaves_the_index_whole(tmp_path: Path) -> None:
    pair = Pair(tmp_path / "kv.sqlite")
    pair.commit(WRITES)
    pair.commit([(S1, b"c", b"9")])
    with pytest.raises(RuntimeError), pair.store.transaction():
        pair.store.rewind(0, None)
        assert pair.store.at().first(S1) is None
        raise RuntimeError("the reorganisation fails half-way")
    pair.assert_same_answers()


def test_an_entry_recorded_out_of_log_order_is_refused(tmp_path: Path) -> None:
    pair = Pair(tmp_path / "kv.sqlite")
    pair.commit(WRITES)
    with pytest.raises(ValueError, match="not after"):
        pair.store.record(0, 0, "Commit", Commit((StreamWrite(S1, b"a", b"x"),), ()))
    pair.assert_same_answers()


def test_a_store_of_the_per_key_layout_is_converted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE t_stream (stream_id BLOB NOT NULL, key BLOB NOT NULL, version INTEGER NOT NULL,
            data BLOB NOT NULL, PRIMARY KEY (stream_id, key, version)) WITHOUT ROWID;
        CREATE TABLE t_acl (stream_id BLOB NOT NULL, key BLOB NOT NULL, account BLOB NOT NULL,
            version INTEGER NOT NULL, op INTEGER NOT NULL, operator BLOB NOT NULL);
        CREATE TABLE t_tx (seq INTEGER PRIMARY KEY, block INTEGER NOT NULL, result TEXT);
        CREATE TABLE t_misc (id INTEGER PRIMARY KEY CHECK (id = 0), next_seq INTEGER NOT NULL,
            next_block INTEGER NOT NULL, parent_hash BLOB);""")
    db.executemany("INSERT INTO t_stream VALUES (?, ?, ?, ?)",
                   [(S1, b"a", 0, b"1"), (S1, b"b", 0, b"2"), (S2, b"a", 0, b"3"), (S1, b"a", 2, b"")])
    db.execute("INSERT INTO t_acl VALUES (?, x'', ?, 0, ?, ?)", (S1, b"\xaa" * 20, int(AclOp.GRANT_ADMIN), bytes(20)))
    db.executemany("INSERT INTO t_tx VALUES (?, ?, ?)", [(0, 0, "Commit"), (1, 0, None), (2, 1, "Commit")])
    db.execute("INSERT INTO t_misc VALUES (0, 3, 2, NULL)")
    db.commit()
    db.close()
    store = KvStore(path, 0)
    model = MemoryState()
    model.apply(0, Commit((StreamWrite(S1, b"a", b"1"), StreamWrite(S1, b"b", b"2"), StreamWrite(S2, b"a", b"3")),
                          (AclRecord(AclOp.GRANT_ADMIN, S1, b"", b"\xaa" * 20, bytes(20)),)))
    model.apply(2, Commit((StreamWrite(S1, b"a", b""),), ()))
    for version in (0, 1, 2, LATEST):
        assert answers(store.at(version)) == answers(ModelAt(model.at(version)))
    assert store.at().is_admin(b"\xaa" * 20, S1) and store.cursor().next_seq == 3
    assert store.result(2) == "Commit" and store.result(1) is None


def test_a_row_lists_the_writes_it_holds_and_a_damaged_list_is_refused() -> None:
    writes = (StreamWrite(S1, b"a", b"12"), StreamWrite(S2, b"key" * 100, b""), StreamWrite(S1, b"b", b"345"))
    data, listed, listing = compute_row(writes)
    assert data == b"12345" and parse_row_writes(listing) == listed
    assert list(listed.stream_keys()) == [(S1, b"a"), (S2, b"key" * 100), (S1, b"b")]
    for damaged in (listing[:-1], listing + b"\x00", listing[:10]):
        with pytest.raises(InvalidRow):
            parse_row_writes(damaged)


write_lists = st.lists(st.tuples(st.sampled_from((S1, S2)), st.sampled_from(KEYS), st.binary(max_size=3)),
                       min_size=1, max_size=4)
operations = st.lists(st.one_of(
    st.tuples(st.just("commit"), write_lists),
    st.tuples(st.just("rolled back"), st.lists(write_lists, min_size=1, max_size=3)),
    st.tuples(st.just("rewind"), st.integers(0, 6)),
    st.tuples(st.just("reopen"), st.none()),
), max_size=12)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_the_store_answers_as_the_spec_state_through_rollbacks_rewinds_and_reopens(
        tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, object]]) -> None:
    pair = Pair(tmp_path_factory.mktemp("store") / "kv.sqlite")
    try:
        for op, arg in ops:
            if op == "commit":
                pair.commit(arg)  # type: ignore[arg-type]
            elif op == "rolled back":
                rolled_back_batch(pair, arg)  # type: ignore[arg-type]
            elif op == "rewind":
                pair.rewind(arg)  # type: ignore[arg-type]
            else:
                pair.reopen()
        pair.assert_same_answers()
    finally:
        pair.store.close()
