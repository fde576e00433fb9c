"""Clients read the auditors' records (issue 17 §3): storage discovery and the indexer skip an
operator whose bond was slashed and put a negatively scored one after the rest."""

from __future__ import annotations

from tests.integration.alignment.conftest import AlignmentNet
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.chain.standing import registry_standings
from zgos.storage.discovery import registry_entries
from zgos.storage.spec.challenges import ANSWER_WINDOW_BLOCKS


def test_discovery_skips_slashed_storage_operators_and_ranks_low_scores_last(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    slashed, scored, clean = (net.storage_operator() for _ in range(3))
    auditor = net.auditor()
    custody, signature = net.custody(slashed)
    challenge_id = contracts.open_challenge(auditor, slashed.address, custody, signature)
    net.mine(ANSWER_WINDOW_BLOCKS + 2)
    contracts.slash_unanswered(auditor, challenge_id)
    contracts.report(auditor, scored.address, BondKind.STORAGE, int(Finding.STORAGE), net.file.root, -10)

    standings = registry_standings(net.chain, net.deployment, NodeKind.STORAGE)
    assert standings is not None
    read = standings()
    assert read[slashed.address.lower()].slashed and read[scored.address.lower()].score == -10
    registry = NodeRegistry(net.chain, net.deployment.address("NodeRegistry"))
    ours = {slashed.address, scored.address, clean.address}
    ranked = [e.operator for e in registry_entries(registry, standings) if e.operator in ours]
    assert ranked == [clean.address, scored.address]
    unfiltered = [e.operator for e in registry_entries(registry, None) if e.operator in ours]
    assert unfiltered == [slashed.address, scored.address, clean.address], "without standings: the registry's order"
