"""The storage node's typed errors: callers (RPC edge, fast path, peer sync, miner) tell them
apart by class, never by message text."""

from __future__ import annotations

from zgos.core.errors import ZgError


class FileNotFound(ZgError):
    """No log entry with that root or seq is known to this node."""


class AlreadyFinalized(ZgError):
    """Every segment of the file is already stored."""


class DataUnavailable(ZgError):
    """The node does not hold the requested data (yet)."""


class OutOfShard(ZgError):
    """A segment outside this node's shard was sent to it."""
