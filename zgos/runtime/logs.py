"""How a long-running service logs: one format for every network's service, INFO and up to
its log file (the devnet points stdout and stderr there), and no line per HTTP call from the
clients it uses to poll the chain."""

from __future__ import annotations

import logging

SERVICE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore", "web3", "urllib3")


def configure_service_logging(level: int = logging.INFO) -> None:
    """Call once, at the start of a service command (never from library code)."""
    logging.basicConfig(level=level, format=SERVICE_LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
