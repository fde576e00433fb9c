"""The miner's control loop: registers the miner (retrying with a logged reason; never fatal),
polls ``PoraMine.computeWorkerContext`` (an ``eth_call``), opens due epochs, seals new data in
the background, hands the epoch's puzzle to the PoRA workers and submits their hits.

Restart behaviour: sealed pieces and submitted answers are durable (``MinerStore``); an epoch
with a recorded answer is never answered again (the contract also refuses a second reward), so
a restart mid-epoch resumes mining without double-submitting. Keys are never logged, only the
miner's address.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3RPCError

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.storage.contracts import FlowContract, PoraMine, WorkerContext
from zgos.storage.miner.config import MinerConfig
from zgos.storage.miner.reader import FlowReader
from zgos.storage.miner.sealer import Sealer
from zgos.storage.miner.store import MinerStore
from zgos.storage.miner.submitter import Submitter
from zgos.storage.miner.workers import PoraWorkers, Puzzle
from zgos.storage.node.node import StorageNode
from zgos.storage.spec.answer import EMPTY_HASH, EpochRange, compute_epoch_ranges
from zgos.storage.spec.pora import (
    SECTORS_PER_LOAD,
    InvalidRecallRange,
    compute_owner_miner_id,
    compute_recall_range,
    compute_threshold,
)

log = logging.getLogger(__name__)

REGISTER_RETRY_MIN_S = 2.0
REGISTER_RETRY_MAX_S = 30.0
JOIN_TIMEOUT_S = 5.0


class Miner:
    """PoRA miner of one storage node (see the module docstring); built by ``build_miner``."""

    def __init__(self, node: StorageNode, chain: Chain, account: LocalAccount, config: MinerConfig) -> None:
        self.node = node
        self.chain = chain
        self.account = account
        self.config = config
        self.mine = PoraMine(chain, config.mine_address)
        self.flow = FlowContract(chain, node.config.flow_address)
        self.miner_id = compute_owner_miner_id(bytes.fromhex(account.address[2:]))
        self.beneficiary = config.beneficiary or account.address
        self.store = MinerStore(node.config.data_dir / "miner.sqlite")
        self.store.check_miner(self.miner_id)
        reader = FlowReader(node)
        self.sealer = Sealer(self.store, reader, self.miner_id)
        self.submitter = Submitter(self.store, reader, self.mine, account, self.miner_id)
        self._wake = threading.Event()
        self.workers = PoraWorkers(self.store, self.miner_id, config.cpu_fraction, self._wake.set)
        self.registered = False
        self.last_error = ""
        self._ranges: list[EpochRange] = []
        self._epoch_log: list[tuple[bytes, int]] = []
        self._epoch_block = 0
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume) mining; the control thread and workers run until ``close``."""
        self.workers.mining.set()
        if not self._threads:
            self._threads = [threading.Thread(target=self._control, name="miner-control", daemon=True)]
            self._threads += [threading.Thread(target=self.workers.run, name=f"miner-pora-{i}", daemon=True)
                              for i in range(self.config.threads)]
            for thread in self._threads:
                thread.start()
        log.info("miner %s started (id 0x%s, beneficiary %s, %d thread(s) at %.0f%% CPU)",
                 self.account.address, self.miner_id.hex(), self.beneficiary,
                 self.config.threads, 100 * self.config.cpu_fraction)

    def pause(self) -> None:
        """Stop hashing and submitting (sealing stays as it is); ``start`` resumes."""
        self.workers.mining.clear()
        log.info("miner paused")

    def close(self) -> None:
        self.workers.stopping.set()
        self.workers.mining.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT_S)

    @property
    def running(self) -> bool:
        return self.workers.mining.is_set() and not self.workers.stopping.is_set()

    # --- control loop --------------------------------------------------------------------

    def _control(self) -> None:
        retry = REGISTER_RETRY_MIN_S
        while not self.workers.stopping.is_set():
            wait = self.config.poll_s
            try:
                if not self.registered:
                    self.register()
                    retry = REGISTER_RETRY_MIN_S
                self.tick()
                self.last_error = ""
            except ZgError as exc:
                self.last_error = str(exc)
                if not self.registered:
                    wait, retry = retry, min(retry * 2, REGISTER_RETRY_MAX_S)
                log.warning("miner: %s; retrying in %.0f s", exc, wait)
            except (OSError, Web3RPCError) as exc:
                self.last_error = f"chain unreachable: {type(exc).__name__}"
                log.warning("miner: chain unreachable (%s); retrying", type(exc).__name__)
            except Exception as exc:  # a bug must not kill the node: log it and keep going
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("miner control loop error")
            self._wake.wait(wait)
            self._wake.clear()

    def register(self) -> None:
        """Register the miner id paying the beneficiary, unless the chain already has it so."""
        current = self.mine.beneficiary(self.miner_id)
        if current is None or current.lower() != self.beneficiary.lower():
            self.mine.register(self.account, self.beneficiary)
            log.info("registered miner 0x%s with beneficiary %s", self.miner_id.hex(), self.beneficiary)
        self.registered = True

    def tick(self) -> None:
        """One control step: settle, follow epochs, seal, submit hits, set the next puzzle."""
        worker = self.mine.worker_context(self.miner_id)
        context = worker.context
        self.submitter.resolve_unknown()
        self._update_epochs(context.digest, context.flow_length)
        self.sealer.seal(self._ranges, context.flow_length)
        self.submit_hits()
        due = worker.can_submit and context.digest != EMPTY_HASH and self.store.answer(context.epoch) is None
        self.workers.set_puzzle(self._make_puzzle(worker) if due else None)

    def submit_hits(self) -> None:
        for found in self.submitter.submit_all(self.workers.take_hits()):
            self.workers.add_hit(found)

    def _make_puzzle(self, worker: WorkerContext) -> Puzzle | None:
        # A sharded node (``node.shard``) mines only its segments: recall loads are flow
        # segments, kept in the shard by the range's mask.
        context, shard = worker.context, self.node.shard
        try:
            recall_range = compute_recall_range(context.flow_length, shard.shard_id, shard.num_shard)
            if recall_range.mine_length < SECTORS_PER_LOAD * shard.num_shard:
                return None  # not one 256 KiB load of the flow per shard: nothing to mine yet
            threshold = compute_threshold(worker.pora_target, recall_range, context.flow_length)
        except InvalidRecallRange:
            return None
        return Puzzle(context.epoch, context.digest, context.flow_root, context.flow_length,
                      worker.subtask_digest, recall_range, threshold)

    def _update_epochs(self, digest: bytes, flow_length: int) -> None:
        """Follow ``NewEpoch``; open the current epoch on chain when it holds data to seal."""
        head = self.chain.block_number()
        if head >= self._epoch_block:
            first = max(self._epoch_block, self.node.config.start_block)
            self._epoch_log += self.flow.epoch_events(first, head)
            self._epoch_block = head + 1
            self._ranges = compute_epoch_ranges(self._epoch_log)
        recorded_end = self._ranges[-1].end if self._ranges else 0
        recorded = {r.digest for r in self._ranges}
        if digest != EMPTY_HASH and digest not in recorded and flow_length > recorded_end:
            # New data is only sealable once its epoch is recorded: record it (cheap, once).
            self.flow.make_context(self.account)
            log.info("opened the mining epoch holding flow sectors %d..%d", recorded_end, flow_length)

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``miner_getStatus`` (and ``zgs_getStatus``'s ``miner``)."""
        sealed, zero = self.store.count_seals()
        answers = self.store.answers()
        accepted = [a for a in answers if a["state"] == "accepted"]
        puzzle = self.workers.puzzle
        return {
            "running": self.running,
            "minerAddress": self.account.address,
            "minerId": "0x" + self.miner_id.hex(),
            "beneficiary": self.beneficiary,
            "registered": self.registered,
            "threads": self.config.threads,
            "cpuFraction": self.config.cpu_fraction,
            "hashRate": round(self.workers.hash_rate(), 2),
            "iterations": self.workers.stats.iterations,
            "sealedPieces": sealed,
            "zeroPieces": zero,
            "miningEpoch": puzzle.epoch if puzzle else None,
            "answersSubmitted": len(answers),
            "answersAccepted": len(accepted),
            "answersRejected": len([a for a in answers if a["state"] == "rejected"]),
            "totalReward": sum(a["reward"] for a in accepted),
            "lastReward": accepted[-1] if accepted else None,
            "lastError": self.last_error,
        }
