"""A lab of "hosts" on one machine: Linux network namespaces joined by veth pairs to a bridge.

Each host is a network namespace with its own loopback and one interface, ``eth0``, on the lab's
subnet (``10.77.N.0/24``, N drawn per lab so parallel labs do not meet). The bridge lives in a
namespace of its own (the lab's switch), so the machine's own network is never touched. A process
runs on a host through ``ip netns exec``; the test itself reaches a host by running a function
in a thread that entered the host's namespace (``Lab.run_on``). On a host, ``127.0.0.1`` is that
host's own loopback: no process can reach another host's loopback address, by construction.

Needs root and ``ip netns`` (``netns_available``). This kernel has no ``netem``: link latency, where
a scenario needs it, comes from a userspace delay proxy, not from the kernel.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import secrets
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace
NETNS_DIR = Path("/run/netns")
PREFIX_LENGTH = 24


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def netns_available() -> bool:
    """Whether this process may create network namespaces (root, ``ip netns`` present)."""
    name = f"zgprobe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.CalledProcessError):
        return False
    _ip("netns", "del", name)
    return True


@dataclass(frozen=True)
class Host:
    """One namespace of the lab: its name and its address on the lab's subnet."""

    name: str
    namespace: str
    address: str

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run on this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class Lab:
    """Hosts on one bridge; ``up`` builds them, ``down`` removes every namespace it made."""

    def __init__(self, names: Sequence[str]) -> None:
        self.tag = secrets.token_hex(3)
        self.subnet = random.SystemRandom().randrange(1, 250)
        self.switch = f"zgsw-{self.tag}"
        self.hosts = {name: Host(name, f"zg{i}-{self.tag}", f"10.77.{self.subnet}.{i + 1}")
                      for i, name in enumerate(names)}
        self._made: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def addresses(self) -> set[str]:
        """Every host's address on the lab's subnet."""
        return {host.address for host in self.hosts.values()}

    def up(self) -> Lab:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts.values()):
            self._attach(i, host)
        return self

    def _attach(self, index: int, host: Host) -> None:
        inner, outer = f"zgh{index}{self.tag}", f"zgs{index}{self.tag}"
        _ip("netns", "add", host.namespace)
        self._made.append(host.namespace)
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", outer, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", outer, "master", "br0")
        _ip("-n", self.switch, "link", "set", outer, "up")
        _ip("-n", host.namespace, "link", "set", inner, "name", "eth0")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")

    def link(self, name: str, up: bool) -> None:
        """Take host ``name``'s cable out of the switch (``up=False``: a partition) or back in."""
        index = list(self.hosts).index(name)
        _ip("-n", self.switch, "link", "set", f"zgs{index}{self.tag}", "up" if up else "down")

    def spawn(self, host: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` (output to ``log``); ``down`` stops it if the test did not."""
        process = subprocess.Popen(self[host].argv(*argv), stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                   env=env)
        self.processes.append(process)
        return process

    def run(self, host: str, argv: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on ``host`` to completion, output captured."""
        return subprocess.run(self[host].argv(*argv), capture_output=True, text=True, env=env, timeout=timeout)

    def run_on(self, host: str, fn: Callable[[], T]) -> T:
        """``fn()`` called in a thread inside ``host``'s namespace (its sockets are that host's)."""
        result: dict[str, Any] = {}
        thread = self.start_on(host, fn, result, daemon=False)
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]  # type: ignore[no-any-return]

    def start_on(self, host: str, fn: Callable[[], object], result: dict[str, Any] | None = None,
                 daemon: bool = True) -> threading.Thread:
        """``fn()`` started in a thread inside ``host``'s namespace and not waited for (a server
        the test runs on that host itself); its value or exception lands in ``result``."""
        out: dict[str, Any] = {} if result is None else result

        def inside() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(NETNS_DIR / self[host].namespace) as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    out["error"] = OSError(ctypes.get_errno(), "setns failed")
                    return
            try:
                out["value"] = fn()
            except Exception as exc:  # handed to the caller
                out["error"] = exc

        thread = threading.Thread(target=inside, daemon=daemon)
        thread.start()
        return thread

    def down(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._made.clear()


def zg_env(**extra: str) -> dict[str, str]:
    """The test's environment for a ``zg`` on a host: no ``ZGOS_*`` of the test's own, the
    connection log on (``zgos.runtime.logs``), plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    return {**base, "ZGOS_LOG_CONNECTIONS": "1", **extra}


CONNECTION_LINE = re.compile(r"zgos\.connections: connect (\S+) -> (\S+)")


def connected_hosts(logs: Sequence[Path]) -> list[str]:
    """The host of every address the services logging to ``logs`` connected to."""
    hosts = []
    for log in logs:
        for _, address in CONNECTION_LINE.findall(log.read_text(errors="replace")):
            hosts.append(urlsplit(address if "://" in address else f"tcp://{address}").hostname or address)
    return hosts
