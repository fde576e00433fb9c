"""Compute faults proven with a provider's own signed Response, and auditors' reports (issue 17)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.alignment.conftest import AlignmentNet
from zgos.alignment.spec.bonds import BPS, COMPUTE_SLASH_BPS, DEVNET_MIN_BOND, BondKind
from zgos.alignment.spec.reports import MAX_SCORE_DELTA, Finding
from zgos.compute.contracts import ComputeContracts
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.vouchers import Domain, Response, sign_message
from zgos.core.errors import TxReverted

PRICES = Prices(input_price=5, output_price=11)
MODEL_HASH = b"\x42" * 32


@dataclass
class Provider:
    account: LocalAccount
    signer: LocalAccount
    domain: Domain

    def sign(self, response: Response, key: bytes | None = None) -> bytes:
        return sign_message(key or self.signer.key, self.domain, response)


def bonded_provider(net: AlignmentNet) -> Provider:
    compute = ComputeContracts.from_deployment(net.chain, net.deployment)
    account, signer = net.funded(), Account.create()
    compute.register(account, url="http://127.0.0.1:1", model="gemma", model_hash=MODEL_HASH, prices=PRICES,
                     signer=signer.address)
    net.contracts.bond(account, BondKind.COMPUTE, DEVNET_MIN_BOND)
    return Provider(account, signer, Domain(net.chain.chain_id, net.deployment.address("InferenceServing")))


def billed(input_tokens: int, output_tokens: int, fee: int | None = None, model_hash: bytes = MODEL_HASH) -> Response:
    honest = input_tokens * PRICES.input_price + output_tokens * PRICES.output_price
    return Response(os.urandom(32), os.urandom(32), "gemma", model_hash, input_tokens, output_tokens,
                    honest if fee is None else fee)


def test_over_billing_is_slashed_and_the_auditor_paid(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    provider, auditor = bonded_provider(net), net.auditor()
    response = billed(20, 30, fee=20 * 5 + 30 * 11 + 1)
    assert bytes(contracts.registry.functions.responseDigest(
        (response.request_hash, response.response_hash, response.model_id, response.model_hash,
         response.input_tokens, response.output_tokens, response.fee)).call()) == \
        provider.domain.digest(response.struct_hash())
    before = net.chain.balance(auditor.address)
    receipt = contracts.slash_compute(auditor, provider.account.address, response, provider.sign(response))
    gas = receipt.gas_used * int(receipt.raw["effectiveGasPrice"])
    slash = DEVNET_MIN_BOND * COMPUTE_SLASH_BPS // BPS
    assert net.chain.balance(auditor.address) == before + slash - gas
    assert receipt.events(contracts.registry, "ComputeFaultSlashed")[0]["args"]["faults"] == 1
    assert contracts.bond_of(provider.account.address, BondKind.COMPUTE).amount == DEVNET_MIN_BOND - slash
    with pytest.raises(TxReverted, match="EvidenceReplayed"):
        contracts.slash_compute(auditor, provider.account.address, response, provider.sign(response))


def test_a_model_the_provider_never_registered_is_slashed(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    provider, auditor = bonded_provider(net), net.auditor()
    response = billed(7, 9, model_hash=b"\x43" * 32)
    receipt = contracts.slash_compute(auditor, provider.account.address, response, provider.sign(response))
    assert receipt.events(contracts.registry, "ComputeFaultSlashed")[0]["args"]["faults"] == 2
    record = contracts.record(provider.account.address, BondKind.COMPUTE)
    assert (record.slashes, record.faults) == (1, 1)


def test_an_honest_response_forged_signature_or_non_auditor_slashes_nothing(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    provider, auditor, stranger = bonded_provider(net), net.auditor(), net.funded()
    honest = billed(3, 4)
    with pytest.raises(TxReverted, match="NoFault"):
        contracts.slash_compute(auditor, provider.account.address, honest, provider.sign(honest))
    over = billed(3, 4, fee=10**18)
    with pytest.raises(TxReverted, match="NotProviderSigner"):  # signed by someone else
        contracts.slash_compute(auditor, provider.account.address, over, provider.sign(over, os.urandom(32)))
    with pytest.raises(TxReverted, match="NotProviderSigner"):  # a signature over other terms
        contracts.slash_compute(auditor, provider.account.address, over, provider.sign(replace(over, fee=1)))
    with pytest.raises(TxReverted, match="NotAuditor"):
        contracts.slash_compute(stranger, provider.account.address, over, provider.sign(over))
    assert contracts.bond_of(provider.account.address, BondKind.COMPUTE).amount == DEVNET_MIN_BOND


def test_a_bond_needs_a_registered_node_and_the_minimum(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    stranger = net.funded()
    for kind in BondKind:
        with pytest.raises(TxReverted, match="NotRegistered"):
            contracts.bond(stranger, kind, DEVNET_MIN_BOND)
    provider = bonded_provider(net)
    with pytest.raises(TxReverted, match="UnknownKind"):
        net.chain.transact(provider.account, contracts.registry.functions.bond(1), value=DEVNET_MIN_BOND)
    fresh = net.funded()
    ComputeContracts.from_deployment(net.chain, net.deployment).register(
        fresh, url="http://127.0.0.1:1", model="m", model_hash=MODEL_HASH, prices=PRICES, signer=fresh.address)
    with pytest.raises(TxReverted, match="BondTooSmall"):
        contracts.bond(fresh, BondKind.COMPUTE, DEVNET_MIN_BOND - 1)


def test_a_report_needs_a_registered_auditor_and_evidence_on_flow(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    auditor, stranger, subject = net.auditor(), net.funded(), net.funded()
    evidence = net.upload(b"provider answered in 9 s: " + os.urandom(64)).root
    with pytest.raises(TxReverted, match="NotAuditor"):
        contracts.report(stranger, subject.address, BondKind.COMPUTE, Finding.LATENCY, evidence, -5)
    with pytest.raises(TxReverted, match="EvidenceNotOnFlow"):
        contracts.report(auditor, subject.address, BondKind.COMPUTE, Finding.LATENCY, os.urandom(32), -5)
    with pytest.raises(TxReverted, match="ScoreDeltaOutOfRange"):
        contracts.report(auditor, subject.address, BondKind.COMPUTE, Finding.LATENCY, evidence, -MAX_SCORE_DELTA - 1)
    contracts.report(auditor, subject.address, BondKind.COMPUTE, Finding.LATENCY, evidence, -5)
    with pytest.raises(TxReverted, match="ReportReplayed"):
        contracts.report(auditor, subject.address, BondKind.COMPUTE, Finding.LATENCY, evidence, -5)
    other = net.auditor()  # another auditor may report the same evidence once
    contracts.report(other, subject.address, BondKind.COMPUTE, Finding.REFUSAL, evidence, 3)
    record = contracts.record(subject.address, BondKind.COMPUTE)
    assert (record.score, record.faults, record.slashes) == (-2, 1, 0)
    assert record in contracts.records()
    assert contracts.bond_of(subject.address, BondKind.COMPUTE).amount == 0  # reports never slash


def test_a_da_signer_bonds_once_registered_in_da_signers(alignment_net: AlignmentNet) -> None:
    from tests.integration.da.helpers import deploy_da, funded_signer
    from zgos.alignment.contracts import AlignmentContracts
    from zgos.chain.accounts import devnet_role
    from zgos.chain.deploy import deploy_contract

    net = alignment_net
    da = deploy_da(net.chain)  # a private quorum: the session's DA signers stay as they are
    d = net.deployment
    registry = deploy_contract(net.chain, devnet_role("deployer"), "AlignmentRegistry", [
        d.address("Flow"), d.address("NodeRegistry"), d.address("InferenceServing"), da.signers.address,
        DEVNET_MIN_BOND, DEVNET_MIN_BOND, 10**15])
    contracts = AlignmentContracts(net.chain, registry)
    signer = funded_signer(net.chain)
    with pytest.raises(TxReverted, match="NotRegistered"):
        contracts.bond(signer.account, BondKind.DA_SIGNER, DEVNET_MIN_BOND)
    da.register(signer.account, signer.secret, "http://127.0.0.1:1", stake=10**18)
    contracts.bond(signer.account, BondKind.DA_SIGNER, DEVNET_MIN_BOND)
    assert contracts.bond_of(signer.account.address, BondKind.DA_SIGNER).amount == DEVNET_MIN_BOND
