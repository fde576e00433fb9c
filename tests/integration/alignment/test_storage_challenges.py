"""Storage challenges on a real chain: seeded by a future block, answered from the node's store,
slashed when unanswered (issue 17)."""

from __future__ import annotations

import random

import pytest

from tests.integration.alignment.conftest import AlignmentNet, revert_at
from zgos.alignment.spec.bonds import (
    BPS,
    DEVNET_CHALLENGE_FEE,
    DEVNET_MIN_AUDITOR_STAKE,
    DEVNET_MIN_BOND,
    STORAGE_SLASH_BPS,
    BondKind,
)
from zgos.core.errors import TxReverted
from zgos.storage.spec.challenges import (
    ANSWER_WINDOW_BLOCKS,
    Custody,
    InvalidCustody,
    compute_challenge_sector,
    compute_custody_digest,
    validate_answer,
    validate_custody,
)


def answer(net: AlignmentNet, challenge_id: int) -> tuple[bytes, list[bytes]]:
    """What the challenged node sends: the sector read from its store and the path."""
    sector = net.contracts.challenge_sector(challenge_id)
    data, proof = net.storage.node.challenged_sector(net.entry.seq, sector)
    return data, list(proof.siblings)


def test_a_challenge_cannot_be_answered_before_its_seed_block_exists(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor = net.storage_operator(), net.auditor()
    custody, signature = net.custody(operator)
    challenge_id = contracts.open_challenge(auditor, operator.address, custody, signature)
    challenge = contracts.challenge(challenge_id)
    opened = challenge.seed_block - 1
    if net.chain.block_number() < challenge.seed_block:
        net.mine(1)
    for block in (opened, challenge.seed_block):  # the seed block's hash is known only after it
        fn = contracts.registry.functions.answerChallenge(challenge_id, bytes(256), [])
        assert revert_at(fn, block, operator.address).startswith("SeedNotYetAvailable")
        sector_fn = contracts.registry.functions.challengeSector(challenge_id)
        assert revert_at(sector_fn, block, operator.address).startswith("SeedNotYetAvailable")
    net.mine(1)  # now the seed exists
    seed = net.chain.w3.eth.get_block(challenge.seed_block)["hash"]
    assert contracts.challenge_sector(challenge_id) == compute_challenge_sector(bytes(seed), challenge_id, custody)
    data, path = answer(net, challenge_id)
    validate_answer(contracts.challenge_sector(challenge_id), data, path, challenge.flow_root, custody.flow_length)
    contracts.answer_challenge(operator, challenge_id, data, path)


def test_an_answered_challenge_cannot_be_slashed(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor, bystander = net.storage_operator(), net.auditor(), net.funded()
    custody, signature = net.custody(operator)
    assert bytes(contracts.registry.functions.custodyDigest(custody.as_abi()).call()) == \
        compute_custody_digest(contracts.domain(), custody)
    challenge_id = contracts.open_challenge(auditor, operator.address, custody, signature)
    net.mine(2)
    before = net.chain.balance(operator.address)
    receipt = contracts.answer_challenge(operator, challenge_id, *answer(net, challenge_id))
    gas = receipt.gas_used * int(receipt.raw["effectiveGasPrice"])
    assert net.chain.balance(operator.address) == before + DEVNET_CHALLENGE_FEE - gas  # the fee pays the answer
    assert contracts.challenge(challenge_id).status == "answered"
    net.mine(ANSWER_WINDOW_BLOCKS + 2)
    with pytest.raises(TxReverted, match="NotOpen"):
        contracts.slash_unanswered(bystander, challenge_id)
    assert contracts.bond_of(operator.address, BondKind.STORAGE).amount == DEVNET_MIN_BOND
    assert contracts.bond_of(operator.address, BondKind.STORAGE).open_challenges == 0


def test_an_unanswered_challenge_is_slashed_and_the_challenger_paid(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor, bystander = net.storage_operator(), net.auditor(), net.funded()
    custody, signature = net.custody(operator)
    challenge_id = contracts.open_challenge(auditor, operator.address, custody, signature)
    with pytest.raises(TxReverted, match="StillAnswerable"):
        contracts.slash_unanswered(bystander, challenge_id)
    net.mine(ANSWER_WINDOW_BLOCKS + 2)
    data, path = answer(net, challenge_id)
    with pytest.raises(TxReverted, match="AnswerTooLate"):
        contracts.answer_challenge(operator, challenge_id, data, path)
    before = net.chain.balance(auditor.address)
    contracts.slash_unanswered(bystander, challenge_id)  # anyone may call it; the challenger is paid
    slash = DEVNET_MIN_BOND * STORAGE_SLASH_BPS // BPS
    assert net.chain.balance(auditor.address) == before + slash + DEVNET_CHALLENGE_FEE
    assert contracts.bond_of(operator.address, BondKind.STORAGE).amount == DEVNET_MIN_BOND - slash
    record = contracts.record(operator.address, BondKind.STORAGE)
    assert (record.slashes, record.faults, record.slashed) == (1, 1, slash)
    with pytest.raises(TxReverted, match="NotOpen"):
        contracts.slash_unanswered(bystander, challenge_id)


def test_a_forged_sector_or_path_is_refused(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor = net.storage_operator(), net.auditor()
    custody, signature = net.custody(operator)
    challenge_id = contracts.open_challenge(auditor, operator.address, custody, signature)
    net.mine(2)
    data, path = answer(net, challenge_id)
    forged = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(TxReverted, match="WrongProof"):
        contracts.answer_challenge(operator, challenge_id, forged, path)
    with pytest.raises(TxReverted, match="WrongProof"):
        contracts.answer_challenge(operator, challenge_id, data, [path[0][::-1], *path[1:]])
    with pytest.raises(TxReverted, match="WrongProofLength"):
        contracts.answer_challenge(operator, challenge_id, data, path[:-1])
    with pytest.raises(TxReverted, match="WrongSectorSize"):
        contracts.answer_challenge(operator, challenge_id, data[:255], path)
    with pytest.raises(TxReverted, match="NotChallenged"):
        contracts.answer_challenge(auditor, challenge_id, data, path)  # only the node answers
    contracts.answer_challenge(operator, challenge_id, data, path)


def test_a_challenge_needs_an_auditor_the_fee_and_the_nodes_own_custody(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor, stranger = net.storage_operator(), net.auditor(), net.funded()
    custody, signature = net.custody(operator)
    fn = contracts.registry.functions.openChallenge(operator.address, custody.as_abi(), signature)
    with pytest.raises(TxReverted, match="NotAuditor"):
        net.chain.transact(stranger, fn, value=DEVNET_CHALLENGE_FEE)
    with pytest.raises(TxReverted, match="WrongFee"):
        net.chain.transact(auditor, fn, value=0)
    _, by_someone_else = net.custody(stranger)
    with pytest.raises(TxReverted, match="BadCustodySignature"):
        contracts.open_challenge(auditor, operator.address, custody, by_someone_else)
    with pytest.raises(TxReverted, match="NotBonded"):
        contracts.open_challenge(auditor, stranger.address, *net.custody(stranger))


def test_a_bond_is_withdrawn_only_after_the_unbond_delay_and_its_open_challenges(alignment_net: AlignmentNet) -> None:
    from zgos.alignment.spec.bonds import UNBOND_DELAY_BLOCKS

    net, contracts = alignment_net, alignment_net.contracts
    operator, auditor = net.storage_operator(), net.auditor()
    custody, signature = net.custody(operator)
    contracts.request_unbond(operator, BondKind.STORAGE)
    with pytest.raises(TxReverted, match="StillLocked"):
        contracts.withdraw_bond(operator, BondKind.STORAGE)
    with pytest.raises(TxReverted, match="Unbonding"):
        contracts.bond(operator, BondKind.STORAGE, DEVNET_MIN_BOND)
    challenge_id = contracts.open_challenge(auditor, operator.address, custody, signature)  # still slashable
    net.mine(UNBOND_DELAY_BLOCKS)
    with pytest.raises(TxReverted, match="StillLocked"):  # the delay is over, the challenge is open
        contracts.withdraw_bond(operator, BondKind.STORAGE)
    with pytest.raises(TxReverted, match="Unbonding"):  # and no new challenge after the unlock block
        contracts.open_challenge(auditor, operator.address, custody, signature)
    contracts.slash_unanswered(auditor, challenge_id)
    before = net.chain.balance(operator.address)
    receipt = contracts.withdraw_bond(operator, BondKind.STORAGE)
    gas = receipt.gas_used * int(receipt.raw["effectiveGasPrice"])
    left = DEVNET_MIN_BOND - DEVNET_MIN_BOND * STORAGE_SLASH_BPS // BPS
    assert net.chain.balance(operator.address) == before + left - gas
    assert contracts.bond_of(operator.address, BondKind.STORAGE).amount == 0


def forwarder_code(target: str) -> bytes:
    """A contract that forwards every call with data (and its value) to ``target`` and refuses
    plain payments: an auditor that cannot be paid."""
    runtime = bytes.fromhex("3615603c573660006000376000600036600034" + "73" + target[2:].lower()
                            + "5af13d600060003e6037573d6000fd5b3d6000f35b60006000fd")
    assert len(runtime) == 66
    return bytes.fromhex("604280600b6000396000f3") + runtime


def test_a_challenger_that_refuses_payment_cannot_block_the_slash(alignment_net: AlignmentNet) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator, owner, bystander = net.storage_operator(), net.funded(), net.funded()
    created = net.chain.transact(owner, data=forwarder_code(contracts.registry.address))
    refusing = str(created.raw["contractAddress"])
    functions = contracts.registry.functions
    net.chain.transact(owner, to=refusing, value=DEVNET_MIN_AUDITOR_STAKE,
                       data=bytes.fromhex(functions.registerAuditor()._encode_transaction_data()[2:]))
    custody, signature = net.custody(operator)
    opening = functions.openChallenge(operator.address, custody.as_abi(), signature)._encode_transaction_data()
    net.chain.transact(owner, to=refusing, value=DEVNET_CHALLENGE_FEE, data=bytes.fromhex(opening[2:]))
    challenge_id = contracts.registry.functions.challengeCount().call()
    assert contracts.challenge(challenge_id).challenger == refusing
    net.mine(ANSWER_WINDOW_BLOCKS + 2)
    receipt = contracts.slash_unanswered(bystander, challenge_id)
    owed = DEVNET_MIN_BOND * STORAGE_SLASH_BPS // BPS + DEVNET_CHALLENGE_FEE
    assert receipt.events(contracts.registry, "PaymentCredited")[0]["args"]["amount"] == owed
    assert contracts.registry.functions.credits(refusing).call() == owed
    assert contracts.bond_of(operator.address, BondKind.STORAGE).open_challenges == 0


def test_the_contract_picks_the_sector_the_spec_picks(alignment_net: AlignmentNet) -> None:
    rng = random.Random(17)
    sector_for = alignment_net.contracts.registry.functions.sectorFor
    for _ in range(40):
        num_shard = 1 << rng.randrange(0, 5)
        start = rng.randrange(1, 64) * 1024 if rng.random() < 0.7 else rng.randrange(1, 64 * 1024)
        data = rng.randrange(1, 20 * 1024) if start % 1024 == 0 else rng.randrange(1, 1024 - start % 1024 + 1)
        custody = Custody(rng.randrange(100), start, data, start + data, rng.randrange(num_shard), num_shard, 10**9)
        try:
            validate_custody(custody)
        except InvalidCustody:
            continue
        seed, challenge_id = rng.randbytes(32), rng.randrange(2**64)
        assert sector_for(seed, challenge_id, custody.as_abi()).call() == \
            compute_challenge_sector(seed, challenge_id, custody)
