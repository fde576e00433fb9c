"""What in-process services log while a hostile test runs: every record of the root logger and
of uvicorn's own loggers (which do not propagate), so a test can assert that no traceback was
logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

SERVICE_LOGGERS = ("", "uvicorn", "uvicorn.error")


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self, since: int = 0) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records[since:]
                if r.exc_info is not None or "Traceback" in r.getMessage()]


@contextmanager
def service_logs() -> Iterator[LogRecords]:
    """Records of ``SERVICE_LOGGERS`` while inside."""
    log = LogRecords()
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    for logger in loggers:
        logger.addHandler(log)
    try:
        yield log
    finally:
        for logger in loggers:
            logger.removeHandler(log)
