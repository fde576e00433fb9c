"""The auditor's rounds against a real storage node on anvil (issue 17 §2, Must hold): honest
rounds find nothing and slash nothing; a node that dropped data is found within N rounds and its
unanswered challenge is slashed to the auditor; a restarted auditor issues no challenge twice
and publishes what it had found."""

from __future__ import annotations

import os
import random
from pathlib import Path

from eth_account.signers.local import LocalAccount

from tests.integration.alignment.conftest import AlignmentNet, responder
from zgos.alignment.auditor.findings import Observation
from zgos.alignment.auditor.journal import Journal
from zgos.alignment.auditor.rounds import Auditor, RoundConfig, Subjects
from zgos.alignment.auditor.storage import StorageAudit, StorageNodeRef
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.compute.contracts import ComputeContracts
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.challenges import ANSWER_WINDOW_BLOCKS

HONEST_ROUNDS = 200
DROPPED_WITHIN_ROUNDS = 12  # P(missing a node that lost half of one file's segments) is small; seeded
SEED = 17


def _auditor(net: AlignmentNet, account: LocalAccount, journal: Path, challenge_every: int, from_block: int,
             seed: int = SEED) -> Auditor:
    """An auditor of the shared node, of the files submitted from ``from_block`` on (the
    session chain also holds other packages' files, on nodes long stopped)."""
    rng = random.Random(seed)
    chain, deployment = net.chain, net.deployment
    assert net.node_operator is not None
    node = StorageNodeRef(net.node_operator.address, net.storage.url)
    storage = StorageAudit(chain, FlowContract(chain, deployment.address("Flow")), net.contracts, DEVNET_POLICY,
                           from_block, rng)
    return Auditor(account, net.contracts, ComputeContracts.from_deployment(chain, deployment),
                   Subjects(list, lambda: [node]), storage, None,
                   lambda: StorageClient([net.storage.url], chain, deployment.address("Flow"), account),
                   Journal(journal), RoundConfig(challenge_every=challenge_every), rng, journal.parent)


def test_over_200_rounds_against_an_honest_node_there_are_no_reports_and_no_slashes(
        announced: AlignmentNet, tmp_path: Path) -> None:
    net = announced
    auditor = _auditor(net, net.auditor(), tmp_path / "journal.sqlite", challenge_every=50,
                       from_block=net.entry.block_number)
    answering = responder(net)
    for _ in range(HONEST_ROUNDS):
        summary = auditor.run_round()
        assert summary.findings == [], summary.findings
        answering.run_once()
        net.mine(2)  # past the seed block of a fresh challenge
        answering.run_once()
    auditor.settle_challenges()
    counts = auditor.journal.counts()
    assert counts["findings"] == 0 and counts.get("challenges_answered") == HONEST_ROUNDS // 50, counts
    assert net.node_operator is not None
    assert net.contracts.reports(net.node_operator.address, net.entry.block_number) == []
    assert net.contracts.record(net.node_operator.address, BondKind.STORAGE).slashes == 0


def test_a_node_that_dropped_data_is_found_within_n_rounds_and_an_unanswered_challenge_slashed(
        announced: AlignmentNet, tmp_path: Path) -> None:
    net = announced
    start = net.chain.block_number() + 1
    lost = net.upload(os.urandom(8 * 256 * 1024))
    store = net.storage.node.store
    dropped = store.segment_indexes(lost.tx_seq)[::2]
    kept = {i: (store.segment_roots(lost.tx_seq)[i], store.segment(lost.tx_seq, i), store.segment_proof(lost.tx_seq, i))
            for i in dropped}
    store.delete_segments(lost.tx_seq, dropped)
    try:
        account = net.auditor()
        auditor = _auditor(net, account, tmp_path / "journal.sqlite", challenge_every=0, from_block=start)
        found = []
        for _ in range(DROPPED_WITHIN_ROUNDS):
            found = auditor.run_round().findings
            if found:
                break
        assert found and found[0].finding == Finding.STORAGE, f"not found in {DROPPED_WITHIN_ROUNDS} rounds"
        assert found[0].evidence["tx_seq"] == lost.tx_seq and found[0].evidence["segment"] in dropped
        reports = net.contracts.reports(found[0].subject, net.deployment.deploy_block)
        assert [(r.finding, r.auditor) for r in reports][-1:] == [("storage", account.address)]

        auditor.config = RoundConfig(challenge_every=1)
        balance = net.chain.balance(account.address)
        auditor.run_round()  # opens a challenge; the node does not answer it
        [challenge] = auditor.journal.challenges()
        net.mine(ANSWER_WINDOW_BLOCKS + 2)
        auditor.config = RoundConfig(challenge_every=0)
        auditor.run_round()
        assert net.contracts.challenge(challenge.challenge_id).status == "slashed"
        assert net.chain.balance(account.address) > balance, "the slashed bond pays the auditor"
    finally:  # the shared node gets its data back for the next tests
        for index, (root, data, proof) in kept.items():
            assert data is not None
            store.put_segment(lost.tx_seq, index, root, data, proof)


def test_a_restarted_auditor_issues_no_challenge_twice_and_loses_no_finding(
        announced: AlignmentNet, tmp_path: Path) -> None:
    net = announced
    account = net.auditor()
    journal = tmp_path / "journal.sqlite"
    operator = net.node_operator
    assert operator is not None
    first = _auditor(net, account, journal, challenge_every=1, from_block=net.entry.block_number)
    held = first.storage.challenge_target(first.subjects.storage_nodes()[0])
    assert held is not None
    # the crash: the challenge transaction went out, its id was never journaled; a finding was
    # journaled, never published
    row = first.journal.challenge_sent(operator.address, held.entry.seq, net.chain.block_number())
    sent = net.contracts.open_challenge(account, operator.address, held.custody, held.signature)
    finding = Observation(operator.address, BondKind.STORAGE, "storage-spot-check", Finding.STORAGE, -1, "left over")
    first.journal.add_finding(1, finding, finding.document(1, account.address))
    first.journal.close()

    again = _auditor(net, account, journal, challenge_every=0, from_block=net.entry.block_number)
    again.run_round()
    [resolved] = [c for c in again.journal.challenges(("open", "answered", "slashed")) if c.row == row]
    assert resolved.challenge_id == sent
    opened = net.chain.get_logs(net.contracts.registry, "ChallengeOpened", net.deployment.deploy_block,
                                net.chain.block_number(), {"challenger": account.address})
    assert len(opened) == 1, "the restart adopted the challenge it had sent instead of opening another"
    assert again.journal.findings(unpublished=True) == []
    assert [(r.finding, r.delta) for r in net.contracts.reports(operator.address, net.entry.block_number)
            if r.auditor == account.address] == [("storage", -1)]
    responder(net).run_once()  # the shared node answers, so later tests find its bond whole
