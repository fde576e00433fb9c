"""Small network helpers shared by launchers and the devnet: port checks and readiness waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (tests use it to avoid the devnet's fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``check`` until it returns True or ``timeout_s`` passes; return the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def rpc_ready(url: str) -> bool:
    """True if ``url`` answers a JSON-RPC ``eth_chainId`` (an EVM node is up)."""
    response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
    return response.status_code == 200 and "result" in response.json()


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1).status_code < 500
