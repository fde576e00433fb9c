"""Answer submission: a hit is proven against the epoch's flow root and submitted once per
epoch. The answer is recorded ``sending`` before its transaction, and after a restart an answer
left ``sending`` is settled from the chain, so an epoch is never answered twice."""

from __future__ import annotations

import logging

from eth_account.signers.local import LocalAccount

from zgos.core.errors import ZgError
from zgos.storage.contracts import LogEntry, PoraMine
from zgos.storage.miner.reader import FlowReader
from zgos.storage.miner.store import MinerStore
from zgos.storage.miner.workers import FoundHit
from zgos.storage.node.errors import DataUnavailable
from zgos.storage.spec.answer import compute_answer, compute_proof_root, compute_seal_proof
from zgos.storage.spec.flow import compute_flow_items
from zgos.storage.spec.sealing import SECTORS_PER_SEAL, unseal

log = logging.getLogger(__name__)


class Submitter:
    """Proves and submits hits for one miner id."""

    def __init__(self, store: MinerStore, reader: FlowReader, mine: PoraMine, account: LocalAccount,
                 miner_id: bytes) -> None:
        self.store = store
        self.reader = reader
        self.mine = mine
        self.account = account
        self.miner_id = miner_id

    def resolve_unknown(self) -> None:
        """After a restart, an answer left ``sending`` is settled from the chain's record."""
        for answer in self.store.answers():
            if answer["state"] != "sending":
                continue
            rewarded = self.mine.last_rewarded_epoch(self.miner_id)
            state = "accepted" if rewarded == answer["epoch"] else "unknown"
            self.store.record_answer(answer["epoch"], bytes.fromhex(answer["context"][2:]), answer["recallPosition"],
                                     state, "settled after a restart")

    def submit_all(self, hits: list[FoundHit]) -> list[FoundHit]:
        """Submit each hit of an epoch not answered yet; the hits to keep for a later tick."""
        kept = []
        for found in hits:
            if self.store.answer(found.puzzle.epoch) is not None:
                continue  # already answered this epoch (also across restarts)
            if not self.submit(found):
                kept.append(found)
        return kept

    def submit(self, found: FoundHit) -> bool:
        """Prove and submit one hit; False when log sync is behind and it must wait."""
        puzzle, hit = found.puzzle, found.hit
        seal_index = hit.recall_position // SECTORS_PER_SEAL
        prefix = self.reader.prefix(puzzle.flow_length)
        if prefix is None:
            log.info("miner: log sync is behind the mining context; keeping the hit for later")
            return False
        proof = self._proof(found, prefix, seal_index)
        if proof is None:
            return True  # dropped, the reason logged
        answer = compute_answer(hit, puzzle.context_digest, self.miner_id, puzzle.recall_range, found.sealed_context, proof)
        self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "sending")
        try:
            receipt = self.mine.submit(self.account, answer.to_abi())
        except ZgError as exc:  # a rejected answer (or a chain error) never stops the miner
            self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "rejected", str(exc))
            log.warning("miner: answer for epoch %d rejected: %s", puzzle.epoch, exc)
            return True
        self.store.record_answer(puzzle.epoch, puzzle.context_digest, hit.recall_position, "accepted",
                                 receipt.tx_hash, receipt.reward)
        log.info("miner: answer for epoch %d accepted (recall %d, reward %d wei, gas %d)",
                 puzzle.epoch, hit.recall_position, receipt.reward, receipt.gas_used)
        return True

    def _proof(self, found: FoundHit, prefix: list[LogEntry], seal_index: int) -> list[bytes] | None:
        """The seal's proof under the epoch's flow root; None if it cannot be made (logged)."""
        puzzle = found.puzzle
        items = compute_flow_items([(e.seq, e.submission) for e in prefix])
        try:
            proof = compute_seal_proof(items, seal_index, puzzle.flow_length, self.reader.inner_root)
        except DataUnavailable as exc:
            log.warning("miner: cannot prove seal %d: %s", seal_index, exc)
            return None
        data = unseal(found.hit.sealed_data, self.miner_id, found.sealed_context, found.hit.recall_position)
        if compute_proof_root(data, seal_index, proof) != puzzle.flow_root:
            log.warning("miner: seal %d does not prove against the context root; resealing it", seal_index)
            self.store.delete_seal(seal_index)
            return None
        return proof
