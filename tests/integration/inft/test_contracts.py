"""AgentNFT and INFTVerifier on a real anvil: every proof rule of issue 16 (Must hold) is
tried against the contracts with real signatures; each forgery reverts with its own error."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.inft.contracts import InftContracts, IntelligentData, devnet_oracles
from zgos.inft.devnet import DEVNET_THRESHOLD
from zgos.inft.spec.proofs import (
    Reencryption,
    TransferProof,
    order_signatures,
    sign_access,
    sign_ownership,
)
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree


def pubkey(account: LocalAccount) -> bytes:
    return PrivateKey(bytes(account.key)).public_key.format(compressed=False)[1:]


@pytest.fixture(scope="module")
def inft(chain: Chain, deployment: Deployment) -> InftContracts:
    return InftContracts.from_deployment(chain, deployment)


@pytest.fixture(scope="module")
def flow(chain: Chain, deployment: Deployment) -> FlowContract:
    return FlowContract(chain, deployment.address("Flow"))


def stored_root(flow: FlowContract, account: LocalAccount) -> bytes:
    """The root of a fresh file submitted to Flow."""
    tree = FileTree.from_bytes(os.urandom(300))
    flow.submit(account, [tree.submission()])
    return tree.root


def proof(inft: InftContracts, old: bytes, new: bytes, receiver: LocalAccount, *, signers: list[LocalAccount] | None = None,
          acceptor: LocalAccount | None = None, nonce: bytes | None = None) -> TransferProof:
    r = Reencryption(old, new, os.urandom(82), pubkey(receiver), nonce or os.urandom(32))
    domain = inft.domain()
    signatures = [sign_ownership(domain, r, bytes(o.key)) for o in (signers or devnet_oracles()[:DEVNET_THRESHOLD])]
    return TransferProof(r, tuple(order_signatures(domain, r, signatures)), sign_access(domain, r, bytes((acceptor or receiver).key)))


@pytest.fixture
def minted(inft: InftContracts, flow: FlowContract, new_account: LocalAccount) -> tuple[int, bytes]:
    root = stored_root(flow, new_account)
    token = inft.mint(new_account, [IntelligentData("agent prompt", root)], new_account.address, [os.urandom(82)])
    return token, root


@pytest.fixture
def receiver(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def test_a_valid_transfer_moves_the_token_and_its_data_and_publishes_the_sealed_key(
        inft: InftContracts, flow: FlowContract, new_account: LocalAccount, minted: tuple[int, bytes],
        receiver: LocalAccount) -> None:
    token, old = minted
    inft.authorize(new_account, token, receiver.address)
    new = stored_root(flow, new_account)
    p = proof(inft, old, new, receiver)
    inft.transfer(new_account, new_account.address, receiver.address, token, [p])
    assert inft.owner_of(token) == receiver.address
    assert inft.datas_of(token) == (IntelligentData("agent prompt", new),)
    assert inft.sealed_keys(token, receiver.address) == [p.reencryption.sealed_key]
    assert inft.token(token).authorized == (), "usage grants end with the owner"


@pytest.mark.parametrize("forgery, error", [
    ("unknown oracle", "UnknownOracle"),
    ("too few signatures", "NotEnoughOracleSignatures"),
    ("one oracle twice", "OracleSignaturesNotSorted"),
    ("wrong receiver key", "ERC7857WantedReceiverMismatch"),
    ("stale data hash", "ERC7857DataHashMismatch"),
    ("root not on Flow", "DataNotOnFlow"),
    ("stranger accepts", "ERC7857AccessAssistantMismatch"),
])
def test_a_transfer_with_a_bad_proof_reverts_with_the_matching_error(
        inft: InftContracts, flow: FlowContract, new_account: LocalAccount, minted: tuple[int, bytes],
        receiver: LocalAccount, forgery: str, error: str) -> None:
    token, old = minted
    new = stored_root(flow, new_account)
    oracles = devnet_oracles()
    stranger: LocalAccount = Account.create()
    p = {
        "unknown oracle": lambda: proof(inft, old, new, receiver, signers=[oracles[0], stranger]),
        "too few signatures": lambda: proof(inft, old, new, receiver, signers=oracles[:1]),
        "one oracle twice": lambda: _twice(proof(inft, old, new, receiver, signers=oracles[:1])),
        "wrong receiver key": lambda: proof(inft, old, new, stranger, acceptor=receiver),
        "stale data hash": lambda: proof(inft, os.urandom(32), new, receiver),
        "root not on Flow": lambda: proof(inft, old, os.urandom(32), receiver),
        "stranger accepts": lambda: proof(inft, old, new, receiver, acceptor=stranger),
    }[forgery]()
    with pytest.raises(TxReverted, match=error):
        inft.transfer(new_account, new_account.address, receiver.address, token, [p])
    assert inft.owner_of(token) == new_account.address
    assert inft.datas_of(token)[0].data_hash == old


def _twice(p: TransferProof) -> TransferProof:
    return replace(p, oracle_signatures=p.oracle_signatures * 2)


def test_a_replayed_nonce_reverts(inft: InftContracts, flow: FlowContract, new_account: LocalAccount,
                                  receiver: LocalAccount) -> None:
    first = stored_root(flow, new_account)
    a = inft.mint(new_account, [IntelligentData("a", first)], new_account.address, [b"k"])
    b = inft.mint(new_account, [IntelligentData("b", first)], new_account.address, [b"k"])
    nonce = os.urandom(32)
    new = stored_root(flow, new_account)
    inft.transfer(new_account, new_account.address, receiver.address, a, [proof(inft, first, new, receiver, nonce=nonce)])
    with pytest.raises(TxReverted, match="NonceAlreadyUsed"):
        inft.transfer(new_account, new_account.address, receiver.address, b, [proof(inft, first, new, receiver, nonce=nonce)])


def test_calling_the_verifier_directly_cannot_spend_a_proof(
        inft: InftContracts, flow: FlowContract, new_account: LocalAccount, minted: tuple[int, bytes],
        receiver: LocalAccount) -> None:
    token, old = minted
    p = proof(inft, old, stored_root(flow, new_account), receiver)
    with pytest.raises(TxReverted, match="UnknownOracle"):  # signed for the NFT, not for this caller
        inft.chain.transact(new_account, inft.verifier.functions.verifyTransferValidity([p.as_abi()]))
    inft.transfer(new_account, new_account.address, receiver.address, token, [p])
    assert inft.owner_of(token) == receiver.address


def test_a_token_with_data_refuses_a_plain_transfer_and_one_without_is_a_plain_erc721(
        inft: InftContracts, new_account: LocalAccount, minted: tuple[int, bytes], receiver: LocalAccount) -> None:
    token, _ = minted
    with pytest.raises(TxReverted, match="TransferNeedsProofs"):
        inft.chain.transact(new_account, inft.nft.functions.transferFrom(new_account.address, receiver.address, token))
    plain = inft.mint_plain(new_account, new_account.address)
    inft.chain.transact(new_account, inft.nft.functions.transferFrom(new_account.address, receiver.address, plain))
    assert inft.owner_of(plain) == receiver.address
    assert inft.datas_of(plain) == ()


def test_minting_data_that_is_not_in_storage_reverts(inft: InftContracts, new_account: LocalAccount) -> None:
    with pytest.raises(TxReverted, match="DataNotInStorage"):
        inft.mint(new_account, [IntelligentData("ghost", os.urandom(32))], new_account.address, [b"k"])


def test_a_clone_gives_the_receiver_a_new_token_and_keeps_the_original(
        inft: InftContracts, flow: FlowContract, new_account: LocalAccount, minted: tuple[int, bytes],
        receiver: LocalAccount) -> None:
    token, old = minted
    new = stored_root(flow, new_account)
    clone = inft.clone(new_account, new_account.address, receiver.address, token, [proof(inft, old, new, receiver)])
    assert clone != token
    assert inft.owner_of(clone) == receiver.address and inft.datas_of(clone)[0].data_hash == new
    assert inft.owner_of(token) == new_account.address and inft.datas_of(token)[0].data_hash == old


def test_a_delegated_assistant_may_accept_for_the_receiver(
        inft: InftContracts, flow: FlowContract, chain: Chain, new_account: LocalAccount,
        minted: tuple[int, bytes]) -> None:
    token, old = minted
    receiver: LocalAccount = Account.create()
    chain.transact(new_account, to=receiver.address, value=10**17)
    assistant: LocalAccount = Account.create()
    inft.delegate(receiver, assistant.address)
    assert inft.delegate_of(receiver.address) == assistant.address
    p = proof(inft, old, stored_root(flow, new_account), receiver, acceptor=assistant)
    inft.transfer(new_account, new_account.address, receiver.address, token, [p])
    assert inft.owner_of(token) == receiver.address


def test_authorize_and_revoke_usage(inft: InftContracts, new_account: LocalAccount, minted: tuple[int, bytes],
                                    receiver: LocalAccount) -> None:
    token, _ = minted
    inft.authorize(new_account, token, receiver.address)
    assert inft.is_authorized(token, receiver.address)
    with pytest.raises(TxReverted, match="ERC7857AlreadyAuthorized"):
        inft.authorize(new_account, token, receiver.address)
    inft.revoke(new_account, token, receiver.address)
    assert not inft.is_authorized(token, receiver.address)
    with pytest.raises(TxReverted, match="ERC7857NotAuthorized"):
        inft.revoke(new_account, token, receiver.address)


def test_the_oracle_set_is_the_devnet_three_with_threshold_two(inft: InftContracts) -> None:
    oracles, threshold = inft.oracles()
    assert oracles == [o.address for o in devnet_oracles()] and threshold == DEVNET_THRESHOLD
