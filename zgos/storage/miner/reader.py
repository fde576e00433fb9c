"""The flow as this node holds it, for sealing and proving: file data from the node's store,
zeros for padding and gaps, ``None`` where a file's data is not stored here."""

from __future__ import annotations

import bisect

from zgos.core.errors import ZgError
from zgos.storage.contracts import LogEntry
from zgos.storage.node.errors import DataUnavailable
from zgos.storage.node.node import StorageNode
from zgos.storage.spec.flow import FlowItem, compute_sector_data_root
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, ceil_div


class FlowReader:
    """Flow sectors read from one node's store (entries cached until the log grows)."""

    def __init__(self, node: StorageNode) -> None:
        self.node = node
        self._entries: list[LogEntry] = []
        self._starts: list[int] = []

    def refresh(self) -> list[LogEntry]:
        if len(self._entries) != self.node.store.next_seq():
            self._entries = self.node.store.entries()
            self._starts = [e.start_entry for e in self._entries]
        return self._entries

    def flow_length(self) -> int:
        entries = self.refresh()
        return 1 if not entries else entries[-1].start_entry + entries[-1].sectors

    def prefix(self, flow_length: int) -> list[LogEntry] | None:
        """The entries making up the first ``flow_length`` sectors (None: not synced that far)."""
        entries = self.refresh()
        out = [e for e in entries if e.start_entry + e.sectors <= flow_length]
        end = out[-1].start_entry + out[-1].sectors if out else 1
        return out if end == flow_length else None

    def sectors(self, start: int, count: int) -> bytes | None:
        """Flow sectors ``[start, start+count)``; sector 0 (the placeholder) reads as zeros."""
        self.refresh()
        out = bytearray(count * BYTES_PER_SECTOR)
        end = start + count
        for index in range(max(bisect.bisect_right(self._starts, start) - 1, 0), len(self._entries)):
            entry = self._entries[index]
            if entry.start_entry >= end:
                break
            lo = max(start, entry.start_entry)
            hi = min(end, entry.start_entry + ceil_div(entry.size, BYTES_PER_SECTOR))  # padding reads as zeros
            if lo >= hi:
                continue
            chunk = self._file_sectors(entry, lo - entry.start_entry, hi - entry.start_entry)
            if chunk is None:
                return None
            offset = (lo - start) * BYTES_PER_SECTOR
            out[offset : offset + len(chunk)] = chunk
        return bytes(out)

    def _file_sectors(self, entry: LogEntry, start: int, end: int) -> bytes | None:
        record = self.node.store.tx(entry.seq)
        if record is None:
            return None
        try:
            return self.node.chunks(record, start, end)
        except ZgError:  # DataUnavailable among others: not (all) stored here
            return None

    def inner_root(self, item: FlowItem, position: int, height: int) -> bytes:
        """Root of ``2^height`` sectors inside a submission node, hashed from the data."""
        return compute_sector_data_root(self._read_stored, position, height)

    def _read_stored(self, first: int, count: int) -> bytes:
        data = self.sectors(first, count)
        if data is None:
            raise DataUnavailable(f"flow sectors {first}..{first + count} are not stored here")
        return data
