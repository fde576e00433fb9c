"""How many requests a download keeps in flight (``download_threads``): ``workers`` per node,
capped by the client's cores, never fewer than one per node, never more than the hard cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zgos.storage.download import MAX_DOWNLOAD_THREADS, THREADS_PER_CORE, download_threads


def test_a_two_core_client_asks_one_node_four_times_and_four_shard_nodes_once_each() -> None:
    assert download_threads(workers=4, nodes=1, cores=2) == 4
    assert download_threads(workers=4, nodes=4, cores=2) == 4
    assert download_threads(workers=4, nodes=4, cores=8) == 16
    assert download_threads(workers=4, nodes=200, cores=2) == MAX_DOWNLOAD_THREADS


@given(workers=st.integers(1, 32), nodes=st.integers(1, 300), cores=st.integers(1, 256))
def test_every_node_gets_a_request_within_the_caps(workers: int, nodes: int, cores: int) -> None:
    threads = download_threads(workers, nodes, cores)
    assert 1 <= threads <= MAX_DOWNLOAD_THREADS
    assert threads >= min(nodes, MAX_DOWNLOAD_THREADS), "a node without a request in flight idles"
    assert threads <= max(nodes, workers * nodes), "never more than `workers` per node"
    assert threads <= max(nodes, THREADS_PER_CORE * cores), "more threads than that only contend for the cores"
