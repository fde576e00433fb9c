"""The KV store's SQLite layout: its tables, and a committed transaction's row, which holds
its values and the list of what it wrote (from which the store rebuilds its index on open).

Tables (0G's ``sqlite_db_statements.rs``, storage.md §6, keeps a row per written key instead;
``zgos.kv.node.store`` says why this layout does not):

* ``t_tx``: a row per log entry seen: seq, block, the result for this node's transactions and,
  for a commit that wrote keys, ``data`` and ``writes`` (below; NULL otherwise);
* ``t_acl``: a row per committed access-control op (stream, key, account, version, op, operator);
* ``t_misc``: the replay cursor (next log entry, next block to read, that block's parent hash).

A committed transaction's columns:

* ``data``: its values in write order (``b"".join(w.data for w in writes)``); write ``i``'s
  value starts where write ``i - 1``'s ends.
* ``writes``: all integers little-endian::

      u32 n_streams | u32 n_writes | n_streams x streamId[32]
      n_writes x u32 stream index | n_writes x u32 keyLen | n_writes x u64 valueLen
      <key of write 1> <key of write 2> ...     (concatenated in write order)

  Each distinct stream is spelled once (a transaction usually writes one), so the list costs
  16 bytes a key beside the key itself.

``PRAGMA user_version`` holds ``LAYOUT_VERSION``; a store of layout 1 (a ``t_stream`` row per
written key) is converted when it opens, in one SQLite transaction.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from zgos.core.errors import ZgError
from zgos.kv.spec.stream import STREAM_ID_SIZE, StreamWrite

LAYOUT_VERSION = 2  # 1: a ``t_stream`` row per written key (``_migrate_key_rows``)
SCHEMA = """
CREATE TABLE IF NOT EXISTS t_acl (
    stream_id BLOB NOT NULL, key BLOB NOT NULL, account BLOB NOT NULL, version INTEGER NOT NULL,
    op INTEGER NOT NULL, operator BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS acl_account ON t_acl (stream_id, account, version);
CREATE INDEX IF NOT EXISTS acl_key ON t_acl (stream_id, key, version);
CREATE TABLE IF NOT EXISTS t_tx (
    seq INTEGER PRIMARY KEY, block INTEGER NOT NULL, result TEXT, data BLOB, writes BLOB);
CREATE TABLE IF NOT EXISTS t_misc (
    id INTEGER PRIMARY KEY CHECK (id = 0), next_seq INTEGER NOT NULL, next_block INTEGER NOT NULL,
    parent_hash BLOB);
"""
COUNTS = struct.Struct("<II")  # n_streams, n_writes
STREAM_INDEX_FORMAT = "<{}I"  # a u32 stream index a write
LENGTHS_FORMAT = "<{0}I{0}Q"  # a u32 key length a write, then a u64 value length a write
STREAM_INDEX_SIZE = 4  # bytes
REBUILD_HINT = "move the KV node's state dir away; it replays the log from its first block"


class RowWrites(NamedTuple):
    """A transaction's writes as its row lists them, column by column (write ``i`` is
    ``stream_ids[i]``, ``keys[i]``, ``lengths[i]``: its value's length)."""

    stream_ids: Sequence[bytes]
    keys: Sequence[bytes]
    lengths: Sequence[int]

    def stream_keys(self) -> Iterator[tuple[bytes, bytes]]:
        return zip(self.stream_ids, self.keys)  # noqa: B905 (columns of one length)


class InvalidRow(ZgError):
    """A ``writes`` column that does not parse: the store file was damaged or edited."""


@functools.lru_cache(maxsize=256)
def lengths_struct(count: int) -> struct.Struct:
    """The key and value lengths of ``count`` writes (``LENGTHS_FORMAT``)."""
    return struct.Struct(LENGTHS_FORMAT.format(count))


def compute_row(writes: Sequence[StreamWrite]) -> tuple[bytes, RowWrites, bytes]:
    """A committed transaction's ``data`` column, its writes as listed and its ``writes`` column."""
    count = len(writes)
    stream_ids = [w.stream_id for w in writes]
    keys = [w.key for w in writes]
    values = [w.data for w in writes]
    lengths = list(map(len, values))
    if not count or stream_ids.count(stream_ids[0]) == count:
        streams, indices = stream_ids[:1], bytes(STREAM_INDEX_SIZE * count)
    else:
        streams = list(dict.fromkeys(stream_ids))
        position = {stream: i for i, stream in enumerate(streams)}
        indices = struct.pack(STREAM_INDEX_FORMAT.format(count), *[position[s] for s in stream_ids])
    listing = [COUNTS.pack(len(streams), count), *streams, indices,
               lengths_struct(count).pack(*map(len, keys), *lengths), *keys]
    return b"".join(values), RowWrites(stream_ids, keys, lengths), b"".join(listing)


def parse_row_writes(listing: bytes) -> RowWrites:
    """The writes that ``compute_row`` listed; raises ``InvalidRow``."""
    try:
        n_streams, count = COUNTS.unpack_from(listing)
        offset = COUNTS.size
        streams = [listing[offset + i * STREAM_ID_SIZE:offset + (i + 1) * STREAM_ID_SIZE] for i in range(n_streams)]
        offset += n_streams * STREAM_ID_SIZE
        stream_ids = [streams[i] for i in struct.unpack_from(STREAM_INDEX_FORMAT.format(count), listing, offset)]
        offset += count * STREAM_INDEX_SIZE
        lengths = lengths_struct(count).unpack_from(listing, offset)
        offset += lengths_struct(count).size
        keys = []
        for key_length in lengths[:count]:
            keys.append(listing[offset:offset + key_length])
            offset += key_length
    except (struct.error, IndexError) as exc:
        raise InvalidRow(f"a row's list of writes does not parse: {exc}", REBUILD_HINT) from None
    if offset != len(listing):
        raise InvalidRow(f"a row's list of writes ends at byte {offset}, not {len(listing)}", REBUILD_HINT)
    return RowWrites(stream_ids, keys, list(lengths[count:]))


def _migrate_key_rows(db: sqlite3.Connection) -> None:
    """Turn layout 1's ``t_stream`` rows (one per written key) into their transactions' rows."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE t_tx ADD COLUMN data BLOB")
        db.execute("ALTER TABLE t_tx ADD COLUMN writes BLOB")
        versions = [v for (v,) in db.execute("SELECT DISTINCT version FROM t_stream ORDER BY version")]
        for version in versions:
            writes = [StreamWrite(s, k, d) for s, k, d in
                      db.execute("SELECT stream_id, key, data FROM t_stream WHERE version = ?", (version,))]
            data, _, listing = compute_row(writes)
            db.execute("UPDATE t_tx SET data = ?, writes = ? WHERE seq = ?", (data, listing, version))
        db.execute("DROP TABLE t_stream")
        db.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def open_layout(db: sqlite3.Connection) -> None:
    """Create the tables of a new store, or bring an older layout's up to this one."""
    old = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 't_stream'").fetchone()
    if old is not None and db.execute("PRAGMA user_version").fetchone()[0] < LAYOUT_VERSION:
        _migrate_key_rows(db)
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
