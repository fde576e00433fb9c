"""``ChallengeResponder``: a storage operator's side of the challenges opened against it.

It watches ``AlignmentRegistry`` for ``ChallengeOpened`` naming its operator, waits until the
seed block is mined, asks the contract which sector the seed picked, reads that sector and its
path from the node (``source``: ``StorageNode.challenged_sector`` in the node's process) and
answers before the deadline, collecting the challenge fee. It keeps no state of its own: on
start it reads back the last ``LOOKBACK_BLOCKS``, which hold every challenge still answerable
(``zgos.storage.spec.challenges``), so a restart resumes at once. A challenge it cannot
answer (the data is gone) is logged and dropped: the chain will slash it, as it should.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from zgos.core.errors import ZgError
from zgos.storage.challenges import StorageChallenges
from zgos.storage.spec.challenges import ANSWER_WINDOW_BLOCKS, SEED_DELAY_BLOCKS

log = logging.getLogger(__name__)

LOOKBACK_BLOCKS = SEED_DELAY_BLOCKS + ANSWER_WINDOW_BLOCKS + 1
SectorSource = Callable[[int, int], tuple[bytes, list[bytes]]]  # (tx seq, flow sector) -> (data, siblings)


class ChallengeResponder:
    def __init__(self, contracts: StorageChallenges, operator: LocalAccount, source: SectorSource,
                 poll_s: float = 1.0) -> None:
        self.contracts, self.operator, self.source, self.poll_s = contracts, operator, source, poll_s
        self._cursor: int | None = None
        self._pending: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="challenge-responder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.run_once()
            except Exception as exc:  # the chain or the node may be away for a while: keep going
                log.warning("challenge round failed: %s", exc)

    def run_once(self) -> list[int]:
        """Collect new challenges and answer every one whose seed exists; returns those answered."""
        head = self.contracts.chain.block_number()
        start = max(0, head - LOOKBACK_BLOCKS) if self._cursor is None else self._cursor
        if start <= head:
            self._pending.update(self.contracts.challenges_opened(self.operator.address, start, head))
            self._cursor = head + 1
        return [i for i in sorted(self._pending) if self._answer(i, head)]

    def _answer(self, challenge_id: int, head: int) -> bool:
        challenge = self.contracts.challenge(challenge_id)
        if challenge.status != "open" or head > challenge.deadline:
            self._pending.discard(challenge_id)
            return False
        if head <= challenge.seed_block:
            return False  # the seed is the hash of a block not mined yet
        sector = self.contracts.challenge_sector(challenge_id)
        try:
            data, siblings = self.source(challenge.custody.tx_seq, sector)
        except ZgError as exc:
            log.error("cannot answer challenge %d (file %d, sector %d): %s", challenge_id,
                      challenge.custody.tx_seq, sector, exc)
            self._pending.discard(challenge_id)
            return False
        self.contracts.answer_challenge(self.operator, challenge_id, data, siblings)
        self._pending.discard(challenge_id)
        log.info("answered challenge %d (file %d, sector %d)", challenge_id, challenge.custody.tx_seq, sector)
        return True
