"""The repair worker: keeps every erasure-coded file of a deployment at full strength.

0G stores replicas and leaves a lost one lost (reference/storage.md §7). A file uploaded with
``--ec k+m`` survives m lost pieces per stripe; once a node is gone, this worker restores its
pieces onto the live nodes of the same shard so the file again survives m more losses.

Each pass:

1. reads the ``ErasureCoded`` events of the ``ErasureRegistry`` since the last pass (the roots
   and the block cursor are kept in a small JSON state file, so a restart does not rescan);
2. asks ``nodes()`` for the storage nodes afresh (nodes come and go between passes);
3. checks every recorded file (``ErasureClient.health``) and repairs the ones a live node of a
   piece's shard lacks (``ErasureClient.repair``).

One file's failure (too few pieces left, a node dying mid-repair) is reported in the pass and
retried on the next one; it never stops the others. Pieces whose shard has no live node at all
cannot be placed and are reported as orphaned until a node of that shard appears.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.storage.contracts import ErasureRegistry
from zgos.storage.ecclient import ErasureClient

log = logging.getLogger(__name__)

LOG_BLOCK_RANGE = 10_000  # blocks per eth_getLogs call (public RPCs cap the range)
STATE_FILE_NAME = "repairer.json"


@dataclass
class FileStatus:
    root: bytes
    survives: int | None = None  # more node losses every stripe survives after this pass
    restored: int = 0  # segments restored in this pass
    orphaned: int = 0  # pieces whose shard has no live node
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"root": "0x" + self.root.hex(), "survives": self.survives, "restored": self.restored,
                "orphaned": self.orphaned, "error": self.error}


@dataclass
class RepairPass:
    block: int
    nodes: int
    files: list[FileStatus] = field(default_factory=list)

    @property
    def restored(self) -> int:
        return sum(f.restored for f in self.files)


@dataclass
class RepairState:
    """What survives a restart: the next block to scan and every erasure-coded root seen."""

    next_block: int
    roots: list[bytes] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, first_block: int) -> RepairState:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["nextBlock"]), [bytes.fromhex(r[2:]) for r in data["roots"]])
        except FileNotFoundError:
            return cls(first_block)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("repair state %s is unreadable (%s): rescanning from block %d", path, exc, first_block)
            return cls(first_block)

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a kill -9 leaves the old or the new state."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps({"nextBlock": self.next_block, "roots": ["0x" + r.hex() for r in self.roots]}))
        os.replace(partial, path)


class RepairWorker:
    def __init__(self, chain: Chain, registry: ErasureRegistry, nodes: Callable[[], list[str]],
                 client_for: Callable[[list[str]], ErasureClient], state_path: Path, first_block: int) -> None:
        self.chain = chain
        self.registry = registry
        self.nodes = nodes
        self.client_for = client_for
        self.state_path = state_path
        self.state = RepairState.load(state_path, first_block)

    def scan(self) -> int:
        """Add the roots recorded since the last scan; return the head block scanned to."""
        head = self.chain.block_number()
        known = set(self.state.roots)
        for start in range(self.state.next_block, head + 1, LOG_BLOCK_RANGE):
            end = min(head, start + LOG_BLOCK_RANGE - 1)
            for root in self.registry.recorded_roots(start, end):
                if root not in known:
                    known.add(root)
                    self.state.roots.append(root)
        self.state.next_block = head + 1
        self.state.save(self.state_path)
        return head

    def run_once(self, stop: threading.Event | None = None) -> RepairPass:
        """One pass over every known file; once ``stop`` is set, it ends after the file at hand
        (a pass over many files must not hold up a service's shutdown)."""
        head = self.scan()
        urls = self.nodes()
        result = RepairPass(block=head, nodes=len(urls))
        if not self.state.roots:
            return result
        with self.client_for(urls) as client:
            for root in self.state.roots:
                if stop is not None and stop.is_set():
                    break
                result.files.append(self._repair(client, root))
        return result

    def _repair(self, client: ErasureClient, root: bytes) -> FileStatus:
        status = FileStatus(root)
        try:
            before, status.restored = client.repair(root)
            after = client.health(root) if status.restored else before
        except ZgError as exc:
            status.error = exc.message
            log.warning("repair of 0x%s failed, retrying next pass: %s", root.hex(), exc.message)
            return status
        status.survives, status.orphaned = after.survives, len(after.orphaned)
        if status.restored:
            log.info("repaired 0x%s: %d segment(s) restored, survives %d more loss(es)",
                     root.hex(), status.restored, after.survives)
        return status

    def run(self, interval_s: float, stop: threading.Event,
            on_pass: Callable[[RepairPass], None] | None = None) -> None:
        """Pass after pass until ``stop`` is set; a failing pass (chain down) is logged and retried."""
        while not stop.is_set():
            try:
                result = self.run_once(stop)
            except Exception as exc:  # e.g. the chain or every node is down: a worker outlives it
                log.warning("repair pass failed, retrying in %.0f s: %s", interval_s, exc)
            else:
                if on_pass is not None:
                    on_pass(result)
            stop.wait(interval_s)
