"""One audit round, and what it does with what it finds (issue 17 §2).

Each round, in this order:
1. **settle** its open challenges: an answered one is closed, an unanswered one past its
   deadline is slashed (``slashUnanswered``: part of the bond comes to the auditor);
2. **probe** a sample of inference providers (:mod:`zgos.alignment.auditor.compute`): a
   response that proves a fault on chain is slashed at once (``slashCompute``);
3. **spot-check** a sample of storage nodes (:mod:`zgos.alignment.auditor.storage`), and every
   ``challenge_every`` rounds open one on-chain challenge against a random node;
4. **sample** the cells of one recent certified DA blob from its signers (:mod:`zgos.alignment.auditor.da`);
5. **publish** every finding: its evidence uploaded to storage, then ``report`` on chain.
Everything is journaled first (:mod:`zgos.alignment.auditor.journal`), so a round a crash
interrupts loses no finding and issues no challenge twice.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.alignment.auditor.compute import ComputeProbe, SlashableResponse
from zgos.alignment.auditor.da import DaAudit
from zgos.alignment.auditor.findings import AuditorError, Observation
from zgos.alignment.auditor.journal import Journal, StoredChallenge
from zgos.alignment.auditor.storage import StorageAudit, StorageNodeRef
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.compute.contracts import ComputeContracts, ServiceInfo
from zgos.compute.spec import vouchers as v
from zgos.core.errors import TxReverted, ZgError
from zgos.storage.client import StorageClient

log = logging.getLogger(__name__)

PROBE_PROMPTS = ("Name three colours.", "What is the capital of Japan?", "Write one sentence about the sea.",
                 "What is 12 times 12?", "Say hello in French.")
PROBE_FUNDING = 10**17  # neuron kept in the auditor's sub-account with each provider (0.1 0G)
PROBE_REFILL_BELOW = 10**16


@dataclass(frozen=True)
class RoundConfig:
    probes_per_round: int = 1  # providers probed per round
    spot_checks_per_round: int = 1  # storage nodes spot-checked per round
    challenge_every: int = 10  # rounds between on-chain storage challenges (0: never)


@dataclass(frozen=True)
class Subjects:
    """Whom the auditor audits: by default everyone registered on chain."""

    providers: Callable[[], list[ServiceInfo]]
    storage_nodes: Callable[[], list[StorageNodeRef]]


def registered_subjects(compute: ComputeContracts, nodes: NodeRegistry) -> Subjects:
    return Subjects(compute.services,
                    lambda: [StorageNodeRef(n.operator, n.url) for n in nodes.nodes(NodeKind.STORAGE)])


@dataclass(frozen=True)
class RoundSummary:
    n: int
    checks: int
    findings: list[Observation]


class Auditor:
    def __init__(self, account: LocalAccount, contracts: AlignmentContracts, compute: ComputeContracts,
                 subjects: Subjects, storage: StorageAudit, probe: ComputeProbe | None,
                 evidence_store: Callable[[], StorageClient], journal: Journal, config: RoundConfig,
                 rng: random.Random, work_dir: Path, da: DaAudit | None = None) -> None:
        self.account = account
        self.contracts = contracts
        self.compute = compute
        self.subjects = subjects
        self.storage = storage
        self.probe = probe
        self.evidence_store = evidence_store
        self.journal = journal
        self.config = config
        self.rng = rng
        self.work_dir = work_dir
        self.da = da

    def register(self, stake: int) -> None:
        """Register as an auditor with ``stake`` unless already registered."""
        if not self.contracts.is_auditor(self.account.address):
            self.contracts.register_auditor(self.account, stake)

    def run_round(self) -> RoundSummary:
        n = self.journal.begin_round()
        self.settle_challenges()
        observations = self._probe_providers() + self._spot_check_nodes() + (self.da.sample() if self.da else [])
        if self.config.challenge_every and n % self.config.challenge_every == 0:
            self._challenge_a_node()
        findings = [o for o in observations if not o.clean]
        for observation in findings:
            self.journal.add_finding(n, observation, observation.document(n, self.account.address))
        self.publish()
        self.journal.finish_round(n, len(observations), len(findings))
        return RoundSummary(n, len(observations), findings)

    # --- compute -----------------------------------------------------------------------------

    def _probe_providers(self) -> list[Observation]:
        if self.probe is None:
            return []
        services = self.subjects.providers()
        observations: list[Observation] = []
        for service in self.rng.sample(services, min(len(services), self.config.probes_per_round)):
            try:
                self._fund(service.provider)
                outcome = self.probe.probe(self.probe.user.service(service.provider, fresh=True),
                                           self.rng.choice(PROBE_PROMPTS))
            except AuditorError as exc:
                log.warning("probe of %s skipped: %s", service.provider, exc)
                continue
            observations += outcome.observations or [Observation(service.provider, BondKind.COMPUTE, "compute-probe")]
            if outcome.slashable is not None:
                self._slash_compute(outcome.slashable)
        return observations

    def _fund(self, provider: str) -> None:
        """Keep a funded sub-account with ``provider`` that acknowledges its signer."""
        if self.compute.sub_account(self.account.address, provider).spendable < PROBE_REFILL_BELOW:
            self.compute.deposit_and_fund(self.account, provider, PROBE_FUNDING)
        assert self.probe is not None
        self.probe.user.acknowledge(self.compute.service(provider))

    def _slash_compute(self, evidence: SlashableResponse) -> None:
        digest = v.compute_digest(self.compute.domain, evidence.response)
        if self.journal.slashed(digest):
            return
        try:
            self.contracts.slash_compute(self.account, evidence.provider, evidence.response, evidence.signature)
        except TxReverted as exc:
            if "EvidenceReplayed" not in str(exc):
                log.warning("slashing %s failed: %s", evidence.provider, exc)
                return
        self.journal.add_slash(digest, evidence.provider, int(evidence.faults))

    # --- storage -----------------------------------------------------------------------------

    def _spot_check_nodes(self) -> list[Observation]:
        nodes = self.subjects.storage_nodes()
        checked = [self.storage.spot_check(node) for node in
                   self.rng.sample(nodes, min(len(nodes), self.config.spot_checks_per_round))]
        return [o for o in checked if o is not None]

    def _challenge_a_node(self) -> None:
        nodes = self.subjects.storage_nodes()
        if not nodes:
            return
        node = self.rng.choice(nodes)
        held = self.storage.challenge_target(node)
        if held is None:
            return
        row = self.journal.challenge_sent(node.operator, held.entry.seq, self.contracts.chain.block_number())
        try:
            challenge_id = self.contracts.open_challenge(self.account, node.operator, held.custody, held.signature)
        except TxReverted as exc:  # not bonded, unbonding, custody expired: nothing to hold it to
            log.info("no challenge of %s: %s", node.operator, exc)
            self.journal.set_challenge_status(row, "dropped")
            return
        self.journal.challenge_opened(row, challenge_id)

    def settle_challenges(self) -> None:
        """Resolve pending challenges from the chain, close answered ones, slash unanswered ones."""
        for stored in self.journal.challenges():
            if stored.challenge_id is None:
                self._resolve_pending(stored)
                continue
            challenge = self.contracts.challenge(stored.challenge_id)
            if challenge.status != "open":
                self.journal.set_challenge_status(stored.row, challenge.status)
            elif self.contracts.chain.block_number() > challenge.deadline:
                self.contracts.slash_unanswered(self.account, stored.challenge_id)
                self.journal.set_challenge_status(stored.row, "slashed")

    def _resolve_pending(self, stored: StoredChallenge) -> None:
        """A challenge sent before a crash: its id if the chain has it, else it never happened."""
        events = self.contracts.chain.get_logs(
            self.contracts.registry, "ChallengeOpened", stored.sent_at_block, self.contracts.chain.block_number(),
            {"challenger": self.account.address, "operator": stored.operator})
        known = self.journal.challenge_ids()
        found = [int(e["args"]["id"]) for e in events if int(e["args"]["id"]) not in known]
        if found:
            self.journal.challenge_opened(stored.row, found[0])
        else:
            self.journal.set_challenge_status(stored.row, "dropped")

    # --- publishing --------------------------------------------------------------------------

    def publish(self) -> None:
        """Upload the evidence of every unpublished finding and report it on chain."""
        pending = self.journal.findings(unpublished=True, limit=1000)
        if not pending:
            return
        try:
            store = self.evidence_store()
        except ZgError as exc:
            log.warning("findings kept for the next round (no storage): %s", exc)
            return
        with store, tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            for finding in reversed(pending):
                try:
                    self._publish_one(store, Path(tmp), finding.id, finding.root, finding.observation)
                except ZgError as exc:
                    log.warning("finding %d kept for the next round: %s", finding.id, exc)

    def _publish_one(self, store: StorageClient, tmp: Path, finding_id: int, root: bytes | None,
                     observation: Observation) -> None:
        if root is None:
            path = tmp / f"finding-{finding_id}.json"
            path.write_bytes(self.journal.evidence_of(finding_id))
            root = store.upload(path).root
            self.journal.set_root(finding_id, root)
        assert observation.finding is not None
        try:
            self.contracts.report(self.account, observation.subject, observation.kind, int(observation.finding),
                                  root, observation.delta)
        except TxReverted as exc:
            if "ReportReplayed" not in str(exc):
                raise
        self.journal.mark_published(finding_id)

