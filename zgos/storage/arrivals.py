"""``Arrivals``: what one pool thread fetches, handed to a consumer in another thread piece by
piece as each arrives, in the order the consumer asks for them.

A stream fetches several requests' segments at once and yields them in file order: each
request's thread puts its segments here as they are proven, and the consumer takes the one it
needs next, waiting only for that one (not for the whole request, so the first byte goes out
after one segment).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue

from zgos.storage.nodeclient import StorageError

_ENDED = None  # what the thread puts last


class Arrivals:
    """The pieces ``fetch()`` yields as ``(index, data)``, for ``indexes``, fetched in ``pool``."""

    def __init__(self, indexes: range, pool: ThreadPoolExecutor,
                 fetch: Callable[[], Iterable[tuple[int, bytes | None]]]) -> None:
        self.indexes = indexes
        self.queue: SimpleQueue[tuple[int, bytes | None] | BaseException | None] = SimpleQueue()
        self.arrived: dict[int, bytes] = {}
        self.future: Future[None] = pool.submit(self._fetch, fetch)

    def _fetch(self, fetch: Callable[[], Iterable[tuple[int, bytes | None]]]) -> None:
        try:
            for piece in fetch():
                self.queue.put(piece)
        except BaseException as exc:  # the consumer raises it, in its own thread
            self.queue.put(exc)
        self.queue.put(_ENDED)

    def take(self, index: int) -> bytes:
        """Piece ``index``, waiting until it arrives; the fetch's exception if it ended without
        it (a ``StorageError`` if it ended without error, or the piece came without data)."""
        while index not in self.arrived:
            item = self.queue.get()
            if item is _ENDED:
                raise StorageError(f"piece {index} never came")
            if isinstance(item, BaseException):
                raise item
            got, data = item
            if data is None:
                raise StorageError(f"piece {got} came without its data")
            self.arrived[got] = data
        return self.arrived.pop(index)

    def cancel(self) -> None:
        """Do not start the fetch if it has not started (one that has runs to its end)."""
        self.future.cancel()
