"""The explorer's event index: each contract event a panel lists, read from the chain
incrementally (only the blocks since the last read, in bounded windows) and kept in memory in
chain order, so a page of a long list is a slice, not a scan of every log (issue 18).

An entry's position in its series (0 = the first event since the deployment) is its cursor:
a page lists the ``limit`` entries below ``before``, newest first. A reorg (the hash of the
last block read has changed) drops the series and reads it again from the deployment block.
The index lives as long as the explorer process; a restart reads the logs once more.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from web3.contract import Contract
from web3.types import EventData

from zgos.chain.client import Chain

LOG_WINDOW_BLOCKS = 5_000  # blocks per eth_getLogs request


@dataclass
class Series:
    """One event of one contract: every log so far (chain order) and where reading resumes."""

    from_block: int
    entries: list[EventData] = field(default_factory=list)
    next_block: int = -1
    last_hash: bytes | None = None  # hash of block next_block - 1 when it was read

    def __post_init__(self) -> None:
        if self.next_block < 0:
            self.next_block = self.from_block


@dataclass(frozen=True)
class Page:
    """Entries ``(position, event)`` newest first, and how many the series holds."""

    total: int
    items: list[tuple[int, EventData]]


def page_of(entries: list[Any], limit: int, before: int | None) -> list[tuple[int, Any]]:
    """The ``limit`` entries below position ``before`` (all: the newest), newest first."""
    top = len(entries) if before is None else max(0, min(before, len(entries)))
    return [(i, entries[i]) for i in range(top - 1, max(top - limit, 0) - 1, -1)]


class EventIndex:
    """Every series the panels asked for, brought up to the chain head on each read."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], Series] = {}
        self._lock = threading.Lock()

    def events(self, chain: Chain, contract: Contract, event: str, from_block: int) -> list[EventData]:
        """Every ``event`` of ``contract`` since ``from_block``, in chain order (a snapshot)."""
        key = (contract.address, event)
        with self._lock:
            series = self._series.get(key)
            if series is None or series.from_block != from_block or self._reorged(chain, series):
                series = self._series[key] = Series(from_block)
            self._catch_up(chain, contract, event, series)
            return list(series.entries)

    def page(self, chain: Chain, contract: Contract, event: str, from_block: int, limit: int,
             before: int | None) -> Page:
        entries = self.events(chain, contract, event, from_block)
        return Page(len(entries), page_of(entries, limit, before))

    @staticmethod
    def _reorged(chain: Chain, series: Series) -> bool:
        if series.last_hash is None:
            return False
        block = chain.w3.eth.get_block(series.next_block - 1)
        return bytes(block["hash"]) != series.last_hash

    @staticmethod
    def _catch_up(chain: Chain, contract: Contract, event: str, series: Series) -> None:
        head = chain.w3.eth.get_block("latest")
        head_number = int(head["number"])
        while series.next_block <= head_number:
            to_block = min(head_number, series.next_block + LOG_WINDOW_BLOCKS - 1)
            series.entries.extend(chain.get_logs(contract, event, series.next_block, to_block))
            series.next_block = to_block + 1
        if series.next_block == head_number + 1:
            series.last_hash = bytes(head["hash"])
