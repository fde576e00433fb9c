"""What storage nodes say about files, read as answers from strangers: where a node has a
file (``FileLocation``, 0G's ``zgs_getFileInfo``), which of its segments it holds
(``Holding``, zgos's ``/zgos/v1/holdings``), and the checks a client makes of both before it
believes them. Parsing only; ``zgos.storage.nodeclient`` asks the questions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zgos.storage.spec.merkle import InvalidProof, parse_hash
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig


@dataclass(frozen=True)
class FileLocation:
    """A node's ``zgs_getFileInfo`` answer about one file."""

    node: str
    info: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.info["tx"]["seq"])

    @property
    def size(self) -> int:
        return int(self.info["tx"]["size"])

    @property
    def root(self) -> bytes:
        return parse_hash(self.info["tx"]["dataMerkleRoot"])

    @property
    def start_entry(self) -> int:
        return int(self.info["tx"]["startEntryIndex"])


@dataclass(frozen=True)
class Holding:
    """Where a node has one file, and which of its segments it holds."""

    location: FileLocation
    segments: frozenset[int]


def claimed_size(location: FileLocation, root: bytes | None) -> int | None:
    """The size a node's answer claims (None if malformed, or if it names a root other than ``root``)."""
    try:
        if (root is not None and location.root != root) or location.seq < 0 or location.start_entry < 0:
            return None
        return location.size
    except (KeyError, TypeError, ValueError, InvalidProof):
        return None


def describes_file(location: FileLocation, root: bytes, size: int) -> bool:
    """Whether a node's answer describes the file ``root`` of ``size`` bytes."""
    return claimed_size(location, root) == size


def is_finalized(info: object) -> bool:
    """Whether a ``zgs_getFileInfo`` answer says the file is finalized (False if malformed)."""
    return isinstance(info, dict) and info.get("finalized") is True


def parse_segment_indexes(value: object) -> frozenset[int]:
    """A node's list of held segment indexes; ``ValueError`` unless it is one."""
    if not isinstance(value, list) or not all(type(i) is int and i >= 0 for i in value):
        raise ValueError("held segments must be a list of segment indexes")
    return frozenset(value)


def parse_holdings(url: str, answer: Any, count: int) -> tuple[ShardConfig, list[Holding | None]]:
    """The node at ``url``'s ``/zgos/v1/holdings`` answer about ``count`` files: its shard and,
    per file, its holding (None: not known there), whose location's numbers all parse;
    ``ValueError`` if malformed."""
    try:
        files = answer["files"]
        if not isinstance(files, list) or len(files) != count:
            raise ValueError(f"{count} files were asked about")
        holdings = [None if file is None else Holding(FileLocation(url, file["info"]),
                                                      parse_segment_indexes(file["segments"]))
                    for file in files]
        if any(h is not None and claimed_size(h.location, None) is None for h in holdings):
            raise ValueError("a file's info names no valid transaction")
        return ShardConfig.from_json(answer["shard"]), holdings
    except (KeyError, TypeError, InvalidShardConfig) as exc:
        raise ValueError(f"malformed ({type(exc).__name__}: {exc})") from None
