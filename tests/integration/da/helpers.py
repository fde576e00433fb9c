"""Shared set-up for DA integration tests: private DA contracts and funded signer accounts."""

from __future__ import annotations

from dataclasses import dataclass

import blspy
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import deploy_contract
from zgos.da.contracts import DAContracts
from zgos.da.proto import disperser_pb2
from zgos.da.spec import bls

TEST_EPOCH_BLOCKS = 5
TEST_FEE_PER_ROW = 10**15
# A certified dispersal reads CONFIRMED, or FINALIZED once its certificate is deep enough: a
# slow machine can pass that depth before the client looks.
CERTIFIED = frozenset({disperser_pb2.CONFIRMED, disperser_pb2.FINALIZED})


def mine(chain: Chain, blocks: int) -> None:
    chain.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def next_epoch(da: DAContracts) -> int:
    """Mine until a new epoch starts; return it."""
    epoch = da.current_epoch()
    while da.current_epoch() == epoch:
        mine(da.chain, 1)
    return da.current_epoch()


def deploy_da(chain: Chain, epoch_blocks: int = TEST_EPOCH_BLOCKS) -> DAContracts:
    """A private DASigners + DAEntrance pair, so tests never share a quorum."""
    deployer = devnet_role("deployer")
    signers = deploy_contract(chain, deployer, "DASigners", [epoch_blocks, 10**18, 1])
    entrance = deploy_contract(chain, deployer, "DAEntrance", [signers, TEST_FEE_PER_ROW])
    return DAContracts(chain, signers, entrance)


@dataclass(frozen=True)
class SignerKeys:
    account: LocalAccount
    secret: blspy.PrivateKey

    @property
    def pubkey(self) -> bytes:
        return bls.public_key(self.secret)


def funded_signer(chain: Chain, balance: int = 100 * 10**18) -> SignerKeys:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=balance)
    return SignerKeys(account, bls.derive_secret_key(bytes(account.key)))
