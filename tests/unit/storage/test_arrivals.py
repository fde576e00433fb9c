"""``Arrivals``: a pool thread's pieces handed to a consumer one by one, in the order it asks.

Real threads: whatever order the pieces come in, and however the consumer's asks interleave
with them, each piece is taken once and exactly as fetched; a fetch that fails hands its
error on after the pieces that came before it; one that ends without a piece is an error, not
a hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.storage.arrivals import Arrivals
from zgos.storage.nodeclient import StorageError

WAIT_S = 5.0  # far above any wait here; a hang fails the test instead of the suite


def piece(index: int) -> bytes:
    return index.to_bytes(4, "big") * 3


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(list(range(12))), pause_every=st.integers(1, 13))
def test_every_piece_is_taken_once_as_fetched_whatever_order_it_came_in(order: list[int], pause_every: int) -> None:
    def fetch() -> Iterator[tuple[int, bytes | None]]:
        for k, index in enumerate(order):
            if k % pause_every == 0:
                time.sleep(0.001)  # the consumer sometimes waits, sometimes finds pieces waiting
            yield index, piece(index)

    with ThreadPoolExecutor(1) as pool:
        arrivals = Arrivals(range(12), pool, fetch)
        assert [arrivals.take(index) for index in arrivals.indexes] == [piece(i) for i in range(12)]
        assert arrivals.arrived == {}, "nothing is kept once taken"


def test_a_failed_fetch_hands_on_its_pieces_then_its_error() -> None:
    failure = StorageError("storage node http://127.0.0.1:1 did not answer")

    def fetch() -> Iterator[tuple[int, bytes | None]]:
        yield 0, piece(0)
        yield 1, piece(1)
        raise failure

    with ThreadPoolExecutor(1) as pool:
        arrivals = Arrivals(range(4), pool, fetch)
        assert arrivals.take(0) == piece(0) and arrivals.take(1) == piece(1)
        with pytest.raises(StorageError) as raised:
            arrivals.take(2)
        assert raised.value is failure


def test_a_fetch_that_ends_without_a_piece_is_an_error_not_a_hang() -> None:
    def short() -> Iterator[tuple[int, bytes | None]]:
        yield 0, piece(0)

    def without_data() -> Iterator[tuple[int, bytes | None]]:
        yield 0, None  # written to a file: nothing a stream could pass on

    with ThreadPoolExecutor(2) as pool:
        ended = Arrivals(range(2), pool, short)
        assert ended.take(0) == piece(0)
        with pytest.raises(StorageError, match="piece 1 never came"):
            _within(lambda: ended.take(1))
        empty = Arrivals(range(1), pool, without_data)
        with pytest.raises(StorageError, match="piece 0 came without its data"):
            _within(lambda: empty.take(0))


def test_a_fetch_not_yet_started_is_cancelled_and_one_running_ends_on_its_own() -> None:
    release = threading.Event()
    started: list[int] = []

    def blocking() -> Iterator[tuple[int, bytes | None]]:
        started.append(0)
        release.wait(WAIT_S)
        yield 0, piece(0)

    def never() -> Iterator[tuple[int, bytes | None]]:
        started.append(1)
        yield 0, piece(0)

    with ThreadPoolExecutor(1) as pool:
        running = Arrivals(range(1), pool, blocking)
        queued = Arrivals(range(1), pool, never)
        queued.cancel()
        running.cancel()  # too late: it runs to its end
        release.set()
        assert running.take(0) == piece(0)
    assert started == [0], "the cancelled fetch never started"


def _within(call: Callable[[], object]) -> None:
    """``call()`` in a thread, failing the test if it has not returned or raised in ``WAIT_S``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(WAIT_S)
    assert outcome, f"still waiting after {WAIT_S} s"
    if outcome[0] is not None:
        raise outcome[0]
