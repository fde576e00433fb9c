"""DASigners and DAEntrance on a real anvil (Prague, EIP-2537): BLS checks done on-chain."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from eth_account.signers.local import LocalAccount
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.optimized_bls12_381 import normalize

from zgos.chain.client import Chain
from zgos.core.errors import TxReverted
from zgos.da.contracts import BlobStatus, DAContracts, NoActiveSigners
from zgos.da.spec import bls
from zgos.da.spec.assignment import compute_column_owners, compute_epoch_seed
from zgos.da.spec.blob import BlobHeader
from zgos.da.spec.quorum import is_quorum_reached

from .helpers import SignerKeys, deploy_da, funded_signer, next_epoch

SIZE = 1000
HEADER = BlobHeader(SIZE, (bytes.fromhex("c0" + "00" * 47),))


@pytest.fixture(scope="module")
def setup(chain: Chain) -> tuple[DAContracts, list[SignerKeys]]:
    da = deploy_da(chain)
    keys = [funded_signer(chain) for _ in range(4)]
    for i, k in enumerate(keys):
        da.register(k.account, k.secret, f"http://127.0.0.1:{40000 + i}", stake=(i + 1) * 10**18)
    next_epoch(da)
    return da, keys


def certify(da: DAContracts, keys: list[SignerKeys], blob_id: bytes, epoch: int, who: list[int]) -> bytes:
    message = da.signing_message(blob_id, epoch)
    return bls.aggregate([bls.sign(keys[i].secret, message) for i in who])


def test_hash_to_g2_on_chain_matches_rfc9380(chain: Chain, setup: tuple[DAContracts, list[SignerKeys]]) -> None:
    da, _ = setup
    for message in (b"", b"abc", bytes(32)):
        on_chain = bytes(chain.call(da.signers.functions.hashToG2(message, bls.SIG_DST)))
        x, y = normalize(hash_to_G2(message, bls.SIG_DST, hashlib.sha256))
        expected = b"".join(
            int(c).to_bytes(64, "big") for c in (x.coeffs[0], x.coeffs[1], y.coeffs[0], y.coeffs[1])
        )
        assert on_chain == expected


def test_quorum_assignment_on_chain_matches_the_python_rule(setup: tuple[DAContracts, list[SignerKeys]]) -> None:
    da, keys = setup
    quorum = da.quorum(da.current_epoch())
    assert list(quorum.members) == [k.account.address for k in keys]
    assert list(quorum.stakes) == [(i + 1) * 10**18 for i in range(4)]
    seed = compute_epoch_seed(da.signers.address, quorum.epoch)
    assert list(quorum.column_owners) == compute_column_owners(quorum.stakes, seed)
    assert [len(quorum.columns(k.account.address)) for k in keys] == [13, 26, 38, 51]


def test_registration_with_a_forged_proof_of_possession_reverts(chain: Chain) -> None:
    da = deploy_da(chain)
    victim, attacker = funded_signer(chain), funded_signer(chain)
    pubkey = victim.pubkey
    forged_pop = bls.g2_to_eip2537(bls.prove_possession(attacker.secret))
    with pytest.raises(TxReverted, match="InvalidProofOfPossession"):
        chain.transact(
            attacker.account,
            da.signers.functions.register(bls.g1_to_eip2537(pubkey), pubkey, forged_pop, "http://x:1"),
            value=10**18,
        )
    other = bls.public_key(attacker.secret)
    with pytest.raises(TxReverted, match="InvalidPublicKey"):
        chain.transact(
            attacker.account,
            da.signers.functions.register(bls.g1_to_eip2537(pubkey), other, forged_pop, "http://x:1"),
            value=10**18,
        )
    with pytest.raises(TxReverted, match="StakeTooLow"):
        da.register(victim.account, victim.secret, "http://x:1", stake=10**17)


def test_signatures_from_the_python_library_certify_on_chain(
    chain: Chain, setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    da, keys = setup
    submitted = da.submit_blob(new_account, HEADER)
    assert submitted.blob_id == HEADER.blob_id(new_account.address)
    assert da.header(submitted.blob_id) == HEADER
    signature = certify(da, keys, submitted.blob_id, submitted.epoch, [1, 2, 3])  # 9 of 10 stake
    members = [keys[i].account.address for i in (1, 2, 3)]
    receipt = da.submit_certificate(new_account, submitted.blob_id, members, signature)
    (event,) = receipt.events(da.entrance, "BlobCertified")
    assert event["args"]["signedStake"] == 9 * 10**18
    assert da.blob(submitted.blob_id).status is BlobStatus.CERTIFIED
    fee = da.blob_fee(SIZE)
    assert sum(da.earnings(keys[i].account.address) for i in (1, 2, 3)) == fee
    print(f"certificate gas: {receipt.gas_used}")


def test_forged_certificate_is_rejected_by_the_contract(
    setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    da, keys = setup
    header = BlobHeader(SIZE + 1, HEADER.commitments)
    submitted = da.submit_blob(new_account, header)
    members = [k.account.address for k in keys]
    # signed by the right keys over another blob
    wrong_blob = certify(da, keys, HEADER.blob_id(new_account.address), submitted.epoch, [0, 1, 2, 3])
    with pytest.raises(TxReverted, match="InvalidSignature"):
        da.submit_certificate(new_account, submitted.blob_id, members, wrong_blob)
    # claims signer 0 signed, but only 1..3 did
    partial = certify(da, keys, submitted.blob_id, submitted.epoch, [1, 2, 3])
    with pytest.raises(TxReverted, match="InvalidSignature"):
        da.submit_certificate(new_account, submitted.blob_id, members, partial)
    # a key outside the quorum signs in place of a member
    outsider = funded_signer(da.chain)
    message = da.signing_message(submitted.blob_id, submitted.epoch)
    mixed = bls.aggregate([bls.sign(outsider.secret, message), *(bls.sign(keys[i].secret, message) for i in (1, 2, 3))])
    with pytest.raises(TxReverted, match="InvalidSignature"):
        da.submit_certificate(new_account, submitted.blob_id, members, mixed)
    # too little stake, even with valid signatures (1+2+3 = 6 of 10 < 2/3)
    low = certify(da, keys, submitted.blob_id, submitted.epoch, [0, 1, 2])
    with pytest.raises(TxReverted, match="InsufficientStake"):
        da.submit_certificate(new_account, submitted.blob_id, [keys[i].account.address for i in (0, 1, 2)], low)
    # duplicates cannot inflate the stake
    with pytest.raises(TxReverted, match="NotSortedOrDuplicate"):
        da.chain.transact(
            new_account,
            da.entrance.functions.submitCertificate(
                submitted.blob_id, [keys[3].account.address] * 3, bls.g2_to_eip2537(low)
            ),
        )
    assert da.blob(submitted.blob_id).status is BlobStatus.SUBMITTED


def test_the_contract_certifies_exactly_the_signer_sets_the_python_quorum_rule_accepts(
    setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    da, keys = setup
    for size, who in enumerate(itertools.chain.from_iterable(
        itertools.combinations(range(len(keys)), n) for n in range(1, len(keys) + 1)
    ), start=SIZE + 100):
        submitted = da.submit_blob(new_account, BlobHeader(size, HEADER.commitments))
        members = [keys[i].account.address for i in who]
        signature = certify(da, keys, submitted.blob_id, submitted.epoch, list(who))
        quorum = da.quorum(submitted.epoch)
        if is_quorum_reached(sum(quorum.stakes[quorum.index(m)] for m in members), quorum.total_stake):
            da.submit_certificate(new_account, submitted.blob_id, members, signature)
            assert da.blob(submitted.blob_id).status is BlobStatus.CERTIFIED, who
        else:
            with pytest.raises(TxReverted, match="InsufficientStake"):
                da.submit_certificate(new_account, submitted.blob_id, members, signature)
            da.cancel_blob(new_account, submitted.blob_id)


def test_a_blob_submitted_while_no_signer_is_active_raises_a_typed_no_active_signers(
    chain: Chain, setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    fresh = deploy_da(chain, epoch_blocks=10**6)  # registrations count from the next epoch, far away
    keys = funded_signer(chain)
    fresh.register(keys.account, keys.secret, "http://127.0.0.1:40100", stake=10**18)
    with pytest.raises(NoActiveSigners):
        fresh.submit_blob(new_account, HEADER)
    da, _ = setup  # a network with a quorum, also in the epoch before: another revert stays a plain TxReverted
    next_epoch(da)
    with pytest.raises(TxReverted, match="FeeTooLow") as other:
        da.submit_blob(new_account, BlobHeader(SIZE + 7, HEADER.commitments), fee=0)
    assert not isinstance(other.value, NoActiveSigners)


def test_uncertified_blob_fee_is_refunded_on_cancel(
    chain: Chain, setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    da, keys = setup
    header = BlobHeader(SIZE + 2, HEADER.commitments)
    before = chain.balance(new_account.address)
    submitted = da.submit_blob(new_account, header, fee=5 * 10**15)
    with pytest.raises(TxReverted, match="NotSubmitter"):
        da.cancel_blob(keys[0].account, submitted.blob_id)
    receipt = da.cancel_blob(new_account, submitted.blob_id)
    (event,) = receipt.events(da.entrance, "BlobCancelled")
    assert event["args"]["refund"] == 5 * 10**15
    gas = chain.balance(new_account.address) - before
    assert gas > -10**15  # only gas was spent
    assert da.blob(submitted.blob_id).status is BlobStatus.CANCELLED


def test_bad_blob_submissions_revert_with_reasons(
    setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    da, _ = setup
    with pytest.raises(TxReverted, match="InvalidSize"):
        da.chain.transact(new_account, da.entrance.functions.submitBlob(0, HEADER.commitments[0]))
    with pytest.raises(TxReverted, match="InvalidCommitments"):
        da.chain.transact(new_account, da.entrance.functions.submitBlob(200_000, HEADER.commitments[0]), value=10**16)
    with pytest.raises(TxReverted, match="FeeTooLow"):
        da.submit_blob(new_account, BlobHeader(SIZE + 3, HEADER.commitments), fee=1)


def test_signing_message_and_blob_id_match_the_contract(
    chain: Chain, setup: tuple[DAContracts, list[SignerKeys]]
) -> None:
    da, keys = setup
    submitter = keys[0].account.address
    blob_id = HEADER.blob_id(submitter)
    assert bytes(chain.call(da.entrance.functions.signingMessage(blob_id, 7, 0))) == da.signing_message(blob_id, 7)
    commitments = tuple(bytes([i]) * 48 for i in range(5))
    header = BlobHeader(4 * 126976 + 1, commitments)
    on_chain = bytes(chain.call(da.entrance.functions.computeBlobId(submitter, header.size, header.encode_commitments())))
    assert on_chain == header.blob_id(submitter)
    assert header.blob_id(keys[1].account.address) != header.blob_id(submitter), "the id binds the submitter"


def test_a_front_runner_cannot_cancel_someone_elses_blob(
    setup: tuple[DAContracts, list[SignerKeys]], new_account: LocalAccount
) -> None:
    """The attacker copies a pending submission (same size and commitments) before and after the
    victim's: each copy is the attacker's own blob; cancelling it leaves the victim's untouched."""
    da, keys = setup
    header = BlobHeader(SIZE + 4, HEADER.commitments)
    attacker = funded_signer(da.chain).account
    ahead = da.submit_blob(attacker, header)  # front-run: mined before the victim's transaction
    victim = da.submit_blob(new_account, header)
    behind = da.submit_blob(attacker, BlobHeader(SIZE + 5, HEADER.commitments))
    copy = da.submit_blob(new_account, BlobHeader(SIZE + 5, HEADER.commitments))
    assert len({ahead.blob_id, victim.blob_id}) == 2 and behind.blob_id != copy.blob_id
    with pytest.raises(TxReverted, match="NotSubmitter"):
        da.cancel_blob(attacker, victim.blob_id)
    da.cancel_blob(attacker, ahead.blob_id)
    da.cancel_blob(attacker, behind.blob_id)
    assert da.blob(ahead.blob_id).status is BlobStatus.CANCELLED
    assert da.blob(victim.blob_id).status is BlobStatus.SUBMITTED
    assert da.blob(victim.blob_id).submitter == new_account.address
    signature = certify(da, keys, victim.blob_id, victim.epoch, [1, 2, 3])
    da.submit_certificate(new_account, victim.blob_id, [keys[i].account.address for i in (1, 2, 3)], signature)
    assert da.blob(victim.blob_id).status is BlobStatus.CERTIFIED
    assert da.header(victim.blob_id) == header


def test_the_quorum_is_read_page_by_page_with_the_same_result(setup: tuple[DAContracts, list[SignerKeys]]) -> None:
    da, keys = setup
    epoch = da.current_epoch()
    whole = da.read_quorum(epoch)
    assert da.read_quorum(epoch, page_size=1) == whole == da.read_quorum(epoch, page_size=3)
    assert list(whole.members) == [k.account.address for k in keys]
    count = int(da.chain.call(da.signers.functions.signerCount()))
    *_, following = da.chain.call(da.signers.functions.getQuorumPage(epoch, 0, 10**9))
    assert following == min(count, int(da.chain.call(da.signers.functions.MAX_PAGE()))), "a page is capped"
    members, *_, following = da.chain.call(da.signers.functions.getQuorumPage(epoch, count + 5, 10))
    assert (members, following) == ([], count), "an offset past the end is an empty last page"
