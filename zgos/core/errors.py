"""The error type every zgos layer raises for problems a user can act on.

A ``ZgError`` carries a one-line message naming the problem and, where there is one, a hint
saying what to do. The CLI prints exactly that and exits non-zero; servers map it to a
JSON-RPC error object or an HTTP 4xx. Anything else is a bug and shows a traceback only with
``--debug``.
"""

from __future__ import annotations


class ZgError(Exception):
    """A problem the user can act on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ZgError):
    """Missing or inconsistent configuration: data dir, deployment, keys, flags."""


class ChainError(ZgError):
    """The chain could not be reached or answered unexpectedly."""


class RpcUnreachable(ChainError):
    """The chain's RPC did not answer (refused, reset, timed out, or an HTTP error), after the
    transport's own retries; ``cause`` names what happened (``ConnectionError``, ``HTTP 502``)."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class TxReverted(ChainError):
    """A transaction (or its gas estimation) reverted; ``reason`` is the decoded reason."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(f"transaction reverted: {reason}", hint)
        self.reason = reason


class InsufficientFunds(ChainError):
    """The sending account cannot pay for value plus gas."""
