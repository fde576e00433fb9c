"""``StorageChallenges``: the storage-challenge half of ``AlignmentRegistry`` (issue 17).

A storage node answers the challenges opened against it, and anyone may open one against a node
or slash it when it stays silent (``zgos.storage.spec.challenges`` states the rules). These are
storage's own dealings with the registry, so they live here; ``AlignmentContracts`` extends this
class with bonds, reports and compute slashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import Deployment
from zgos.storage.spec.custody import Custody, RegistryDomain

STATUS_NAMES = {1: "open", 2: "answered", 3: "slashed"}


@dataclass(frozen=True)
class Challenge:
    challenge_id: int
    operator: str
    challenger: str
    seed_block: int
    deadline: int
    status: str  # open, answered, slashed
    fee: int
    flow_root: bytes
    custody: Custody


class StorageChallenges:
    def __init__(self, chain: Chain, registry: str) -> None:
        self.chain = chain
        self.registry: Contract = chain.contract("AlignmentRegistry", registry)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> Self:
        return cls(chain, deployment.address("AlignmentRegistry"))

    def domain(self) -> RegistryDomain:
        """The EIP-712 domain storage nodes sign custody under."""
        return RegistryDomain(self.chain.chain_id, self.registry.address)

    def open_challenge(self, auditor: LocalAccount, operator: str, custody: Custody, signature: bytes) -> int:
        """Open a challenge (paying the fee); returns its id."""
        fn = self.registry.functions.openChallenge(to_checksum_address(operator), custody.as_abi(), signature)
        receipt = self.chain.transact(auditor, fn, value=self.challenge_fee())
        return int(receipt.events(self.registry, "ChallengeOpened")[0]["args"]["id"])

    def answer_challenge(self, operator: LocalAccount, challenge_id: int, sector: bytes, proof: list[bytes]) -> Receipt:
        return self.chain.transact(operator, self.registry.functions.answerChallenge(challenge_id, sector, proof))

    def slash_unanswered(self, account: LocalAccount, challenge_id: int) -> Receipt:
        return self.chain.transact(account, self.registry.functions.slashUnanswered(challenge_id))

    def challenge_fee(self) -> int:
        return int(self.chain.call(self.registry.functions.challengeFee()))

    def challenges_opened(self, operator: str, from_block: int, to_block: int) -> list[int]:
        """The ids of the challenges opened against ``operator`` in blocks [from_block, to_block]."""
        events = self.chain.get_logs(self.registry, "ChallengeOpened", from_block, to_block,
                                     {"operator": to_checksum_address(operator)})
        return [int(e["args"]["id"]) for e in events]

    def challenge(self, challenge_id: int) -> Challenge:
        raw = self.chain.call(self.registry.functions.getChallenge(challenge_id))
        operator, challenger, seed_block, deadline, status, fee, root, custody = raw
        return Challenge(challenge_id, str(operator), str(challenger), int(seed_block), int(deadline),
                         STATUS_NAMES.get(int(status), "unknown"), int(fee), bytes(root),
                         Custody(*(int(v) for v in custody)))

    def challenge_sector(self, challenge_id: int) -> int:
        """The sector asked for (reverts with ``SeedNotYetAvailable`` before the seed block)."""
        return int(self.chain.call(self.registry.functions.challengeSector(challenge_id)))
