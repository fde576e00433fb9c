"""free_port: each port it hands out is free and in its range, a caller that asks for many
before binding any (a cluster of nodes) never gets one twice, and processes given different
parts of the range (the suite's xdist workers) draw only from their own."""

from __future__ import annotations

import itertools
import socket

import pytest

from zgos.runtime.netutil import (
    FREE_PORT_RANGE,
    FREE_PORT_RANGE_ENV,
    free_port,
    free_port_range,
    worker_port_range,
)


def test_a_burst_of_free_ports_has_no_repeat_and_each_can_be_bound() -> None:
    ports = [free_port() for _ in range(600)]  # duplicates by chance alone: ~17 in 10,000 ports, ~36 in an xdist worker's 5,000
    low, high = free_port_range()
    assert len(set(ports)) == len(ports)
    assert all(low <= port < high for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_workers_parts_of_the_range_are_disjoint_and_inside_it(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = []
    for index in range(count):
        monkeypatch.setenv(FREE_PORT_RANGE_ENV, worker_port_range(index, count))
        parts.append(free_port_range())
        assert all(parts[-1][0] <= free_port() < parts[-1][1] for _ in range(50))
    assert parts[0][0] == FREE_PORT_RANGE[0] and parts[-1][1] <= FREE_PORT_RANGE[1]
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(parts))


@pytest.mark.parametrize("value", ["15000", "a-b", "9000-12000", "15000-14000", "12000-25000"])
def test_a_malformed_or_outside_part_is_refused_with_the_variable_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FREE_PORT_RANGE_ENV, value)
    with pytest.raises(ValueError, match=FREE_PORT_RANGE_ENV):
        free_port()
