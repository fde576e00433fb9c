"""Run ``zg`` as a user would: a subprocess with its own environment, output captured."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from zgos.cli.devnet import MAX_DA_SIGNERS, MAX_STORAGE_NODES
from zgos.devnet.services import all_services
from zgos.runtime.netutil import READY_TIMEOUT_ENV, ready_timeout_s
from zgos.runtime.service import DevnetOptions

# For a command that waits on something of its own (a devnet's services, a training run):
# bounded by what it waits on, and by pytest-timeout.
NO_TIMEOUT = math.inf


def zg(data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float | None = None,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``zg ARGS`` in ``data_dir``; killed after ``timeout`` seconds, by default the one readiness
    deadline (``ZGOS_READY_TIMEOUT_S``): no single command should take longer than a service
    may take to start. The test's ``ZGOS_*`` variables are not passed on; ``env`` adds some."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_") or k == READY_TIMEOUT_ENV}
    limit = ready_timeout_s() if timeout is None else None if math.isinf(timeout) else timeout
    return subprocess.run(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=limit,
        input=stdin,
        env={**base, **(env or {})},
    )


# Choosing a test devnet's chain port below Linux's ephemeral range (32768+) keeps its services
# (at fixed distances above it: zgos.runtime.ports) clear of the client sockets the tests open.
DEVNET_PORT_RANGE = (20000, 32000)


def devnet_port_span() -> tuple[int, ...]:
    """How far above its chain port each service of the largest devnet listens (the chain: 0),
    read from the devnet's own service table, the one place that applies the port table."""
    chain_port = DEVNET_PORT_RANGE[0]
    options = DevnetOptions(chain_port=chain_port, storage_nodes=MAX_STORAGE_NODES, da_signers=MAX_DA_SIGNERS)
    ports = {urlparse(service.url).port for service in all_services(options)}
    return tuple(sorted({port - chain_port for port in ports if port is not None}))


DEVNET_PORT_SPAN = devnet_port_span()


def devnet_chain_port() -> int:
    """A chain port for a test devnet whose derived service ports are all free now."""
    import random

    from zgos.runtime.netutil import port_in_use

    while True:
        port = random.randrange(*DEVNET_PORT_RANGE)
        if not any(port_in_use(port + delta) for delta in DEVNET_PORT_SPAN):
            return port


def devnet_up(data_dir: Path, chain_port: int, *flags: str) -> subprocess.CompletedProcess[str]:
    """``zg devnet up --detach`` on ``chain_port`` with 0.2 s blocks (pass ``--only GROUPS`` to
    start less). Each service's readiness wait is bounded by the one deadline
    (``netutil.ready_timeout_s``), and a service that misses it makes ``up`` fail with the end
    of that service's log; so ``up`` itself needs no timeout of its own."""
    return zg(data_dir, "devnet", "up", "--detach", "--chain-port", str(chain_port), "--block-time", "0.2",
              *flags, timeout=NO_TIMEOUT)
