"""How a long-running service logs: one format for every network's service, INFO and up to
its log file (the devnet points stdout and stderr there), and no line per HTTP call from the
clients it uses to poll the chain.

The connection log (logger ``CONNECTION_LOGGER``): every connection a service opens to another
service (an announced URL, a DA signer, the chain RPC) as ``connect HOST:PORT -> ADDRESS``,
written only when ``ZGOS_LOG_CONNECTIONS=1`` (the multi-host tests read it to show no process
dialled a loopback address of another host)."""

from __future__ import annotations

import logging
import os

CONNECTION_LOGGER = "zgos.connections"
LOG_CONNECTIONS_ENV = "ZGOS_LOG_CONNECTIONS"
SERVICE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore", "web3", "urllib3")


def configure_service_logging(level: int = logging.INFO) -> None:
    """Call once, at the start of a service command (never from library code)."""
    logging.basicConfig(level=level, format=SERVICE_LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    wanted = os.environ.get(LOG_CONNECTIONS_ENV) == "1"
    logging.getLogger(CONNECTION_LOGGER).setLevel(logging.INFO if wanted else max(level, logging.WARNING))


def log_connection(target: str, address: str) -> None:
    """Record one connection to ``target`` (as dialled) at ``address`` (as connected)."""
    logging.getLogger(CONNECTION_LOGGER).info("connect %s -> %s", target, address)
