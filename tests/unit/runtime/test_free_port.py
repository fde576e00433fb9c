"""free_port: each port it hands out is free and in its range, and a caller that asks for many
before binding any (a cluster of nodes) never gets one twice."""

from __future__ import annotations

import socket

from zgos.runtime.netutil import FREE_PORT_RANGE, free_port


def test_a_burst_of_free_ports_has_no_repeat_and_each_can_be_bound() -> None:
    ports = [free_port() for _ in range(600)]  # duplicates by chance alone: ~17 in a 10,000 range
    assert len(set(ports)) == len(ports)
    assert all(FREE_PORT_RANGE[0] <= port < FREE_PORT_RANGE[1] for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))
