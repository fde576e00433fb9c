"""The KV store's in-memory index: for each key of each stream, the versions that wrote it and
where each value lies in its transaction's row; for each stream, its keys in byte order.

Reads as of version ``v`` follow ``zgos.kv.spec.state`` (storage.md §6): a key's value is its
write with the greatest version ``<= v``, and a key with no write at or before ``v`` is not
there (a write of no bytes is a deletion, but the key is still there, with size 0).

Versions only grow: ``add`` appends a version newer than every one the index holds, and
``drop_from`` removes a version and all newer ones (a reorganisation, or a store transaction
that rolled back). Replaying a transaction costs a dictionary update a key: a key written once
keeps its one location without a list around it, and keys new since the last ordered read wait
in a list, sorted in when a read asks for the keys in order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from zgos.kv.node.layout import RowWrites

Location = tuple[int, int, int]  # version, offset of the value in that version's row, its length
History = Location | list[Location]  # a key's locations, oldest first (one without a list)


class StreamKeys:
    """One stream's keys: each one's history, and the keys in byte order."""

    __slots__ = ("histories", "ordered", "unordered")

    def __init__(self) -> None:
        self.histories: dict[bytes, History] = {}
        self.ordered = SortedList()
        self.unordered: list[bytes] = []  # new keys, not yet in ``ordered`` (some maybe forgotten since)

    def sorted_keys(self) -> SortedList:
        if self.unordered:
            self.ordered.update({key for key in self.unordered if key in self.histories})
            self.unordered.clear()
        return self.ordered

    def forget(self, key: bytes) -> None:
        del self.histories[key]
        self.ordered.discard(key)  # if it is still in ``unordered``, ``sorted_keys`` skips it


NO_KEYS = StreamKeys()  # a placeholder, never written


def first_version(history: History) -> int:
    return history[0] if isinstance(history, tuple) else history[0][0]


def find_location(history: History, version: int) -> Location | None:
    """The newest location at or before ``version``."""
    if isinstance(history, tuple):
        return history if history[0] <= version else None
    if history[-1][0] <= version:
        return history[-1]
    newer = bisect_left(history, (version + 1,))  # the first location after ``version``
    return history[newer - 1] if newer else None


class KeyIndex:
    """Every stored version of every key, by stream; not thread-safe (the store locks it)."""

    def __init__(self) -> None:
        self.streams: dict[bytes, StreamKeys] = {}

    def add(self, version: int, writes: RowWrites) -> None:
        """Index the writes of the transaction at ``version``, in the order its row holds them."""
        offset, stream_id, histories, unordered = 0, None, NO_KEYS.histories, NO_KEYS.unordered
        for write_stream_id, key, length in zip(*writes):  # noqa: B905 (columns of one length)
            if write_stream_id != stream_id:  # writes of one stream usually come together
                stream_id = write_stream_id
                keys = self.streams.get(stream_id) or self.streams.setdefault(stream_id, StreamKeys())
                histories, unordered = keys.histories, keys.unordered
            history = histories.get(key)
            if history is None:
                histories[key] = (version, offset, length)
                unordered.append(key)
            elif isinstance(history, tuple):
                histories[key] = [history, (version, offset, length)]
            else:
                history.append((version, offset, length))
            offset += length

    def drop_from(self, version: int, keys: Iterable[tuple[bytes, bytes]]) -> None:
        """Forget ``version`` and every newer one of ``keys`` (those written at ``version`` or
        after: the keys of other streams and keys hold none)."""
        for stream_id, key in keys:
            stream = self.streams.get(stream_id)
            history = None if stream is None else stream.histories.get(key)
            if stream is None or history is None:
                continue
            if isinstance(history, list):
                del history[bisect_left(history, (version,)):]
            if not history or first_version(history) >= version:
                stream.forget(key)

    def find(self, stream_id: bytes, key: bytes, version: int) -> Location | None:
        """Where the value of ``key`` as of ``version`` lies, or None if it had none."""
        stream = self.streams.get(stream_id)
        history = None if stream is None else stream.histories.get(key)
        return None if history is None else find_location(history, version)

    def keys_from(self, stream_id: bytes, key: bytes | None, version: int, *, inclusive: bool = True,
                  reverse: bool = False) -> Iterator[bytes]:
        """The stream's keys with a value as of ``version``, in byte order from ``key`` on (down
        from it if ``reverse``), past it unless ``inclusive``; from the first (or last) key if
        ``key`` is None."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        bounds = (None, key) if reverse else (key, None)
        inclusion = (True, inclusive) if reverse else (inclusive, True)
        for found in stream.sorted_keys().irange(*bounds, inclusive=inclusion, reverse=reverse):
            if first_version(stream.histories[found]) <= version:  # written at or before ``version``
                yield found
