"""``AlignmentContracts``: typed access to ``AlignmentRegistry`` (issue 17), and its deploy plan.

Reads return small dataclasses; writes go through ``Chain.transact`` (a revert raises
``TxReverted`` naming the contract's custom error). ``DEPLOY_PLAN`` deploys the registry after
``Flow``, ``NodeRegistry``, ``InferenceServing`` and ``DASigners``, with the devnet's bond, stake and fee
(``zgos.alignment.spec.bonds``); another network deploys it with its own amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.alignment.spec.bonds import (
    DEVNET_CHALLENGE_FEE,
    DEVNET_MIN_AUDITOR_STAKE,
    DEVNET_MIN_BOND,
    Bond,
    BondKind,
)
from zgos.alignment.spec.reports import Finding
from zgos.chain.client import Receipt
from zgos.chain.deploy import ContractPlan
from zgos.chain.standing import read_subject_rows
from zgos.compute.spec.vouchers import Response
from zgos.storage.challenges import StorageChallenges


@dataclass(frozen=True)
class SubjectRecord:
    """One subject's standing: ``zg alignment scores`` prints one line per record."""

    operator: str
    kind: BondKind
    score: int
    faults: int
    slashes: int
    slashed: int


@dataclass(frozen=True)
class ReportEvent:
    block: int
    subject: str
    kind: str
    finding: str
    delta: int
    score: int
    auditor: str
    evidence_root: bytes


@dataclass(frozen=True)
class Auditor:
    stake: int
    unlock_block: int


def _response_abi(response: Response) -> tuple[object, ...]:
    r = response
    return (r.request_hash, r.response_hash, r.model_id, r.model_hash, r.input_tokens, r.output_tokens, r.fee)


class AlignmentContracts(StorageChallenges):
    """The whole registry: storage challenges (``StorageChallenges``), bonds, auditors, reports and
    compute slashes."""

    # --- writes ----------------------------------------------------------------------------

    def bond(self, account: LocalAccount, kind: BondKind, amount: int) -> Receipt:
        return self.chain.transact(account, self.registry.functions.bond(int(kind)), value=amount)

    def request_unbond(self, account: LocalAccount, kind: BondKind) -> Receipt:
        return self.chain.transact(account, self.registry.functions.requestUnbond(int(kind)))

    def withdraw_bond(self, account: LocalAccount, kind: BondKind) -> Receipt:
        return self.chain.transact(account, self.registry.functions.withdrawBond(int(kind)))

    def register_auditor(self, account: LocalAccount, stake: int) -> Receipt:
        return self.chain.transact(account, self.registry.functions.registerAuditor(), value=stake)

    def slash_compute(self, auditor: LocalAccount, provider: str, response: Response, signature: bytes) -> Receipt:
        fn = self.registry.functions.slashCompute(to_checksum_address(provider), _response_abi(response), signature)
        return self.chain.transact(auditor, fn)

    def report(self, auditor: LocalAccount, subject: str, kind: BondKind, finding: int, evidence_root: bytes,
               score_delta: int) -> Receipt:
        fn = self.registry.functions.report(to_checksum_address(subject), int(kind), finding, evidence_root, score_delta)
        return self.chain.transact(auditor, fn)

    def withdraw_credit(self, account: LocalAccount) -> Receipt:
        """Collect a payment the account's address refused when it was due (``credits``)."""
        return self.chain.transact(account, self.registry.functions.withdrawCredit())

    # --- reads -----------------------------------------------------------------------------

    def min_bond(self) -> int:
        return int(self.chain.call(self.registry.functions.minBond()))

    def min_auditor_stake(self) -> int:
        return int(self.chain.call(self.registry.functions.minAuditorStake()))

    def reports(self, subject: str | None = None, from_block: int = 0) -> list[ReportEvent]:
        """Every ``Reported`` event (of ``subject``), oldest first."""
        filters = {"subject": to_checksum_address(subject)} if subject else None
        events = self.chain.get_logs(self.registry, "Reported", from_block, self.chain.block_number(), filters)
        return [ReportEvent(int(e["blockNumber"]), str(e["args"]["subject"]), BondKind(int(e["args"]["kind"])).name.lower(),
                            Finding(int(e["args"]["finding"])).name.lower(), int(e["args"]["scoreDelta"]),
                            int(e["args"]["score"]), str(e["args"]["auditor"]), bytes(e["args"]["evidenceRoot"]))
                for e in events]

    def bond_of(self, operator: str, kind: BondKind) -> Bond:
        amount, unlock, open_challenges = self.chain.call(
            self.registry.functions.getBond(to_checksum_address(operator), int(kind)))
        return Bond(int(amount), int(unlock), int(open_challenges))

    def auditor(self, address: str) -> Auditor:
        stake, unlock = self.chain.call(self.registry.functions.getAuditor(to_checksum_address(address)))
        return Auditor(int(stake), int(unlock))

    def is_auditor(self, address: str) -> bool:
        return bool(self.chain.call(self.registry.functions.isAuditor(to_checksum_address(address))))

    def record(self, subject: str, kind: BondKind) -> SubjectRecord:
        score, faults, slashes, slashed = self.chain.call(
            self.registry.functions.getRecord(to_checksum_address(subject), int(kind)))
        return SubjectRecord(to_checksum_address(subject), kind, int(score), int(faults), int(slashes), int(slashed))

    def records(self) -> list[SubjectRecord]:
        """Every subject ever bonded or reported on, with its record, page by page."""
        return [SubjectRecord(operator, BondKind(kind), score, faults, slashes, slashed)
                for operator, kind, score, faults, slashes, slashed in read_subject_rows(self.chain, self.registry)]

DEPLOY_PLAN: list[ContractPlan] = [
    ContractPlan(
        "AlignmentRegistry",
        depends=("Flow", "NodeRegistry", "InferenceServing", "DASigners"),
        args=lambda a: [a["Flow"], a["NodeRegistry"], a["InferenceServing"], a["DASigners"], DEVNET_MIN_BOND,
                        DEVNET_MIN_AUDITOR_STAKE, DEVNET_CHALLENGE_FEE],
    ),
]
