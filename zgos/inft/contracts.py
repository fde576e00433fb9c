"""``InftContracts``: typed access to ``AgentNFT`` and its ``INFTVerifier`` (issue 16).

Reads return small dataclasses; writes go through ``Chain.transact`` (a revert raises
``TxReverted`` naming the contract's custom error). ``DEPLOY_PLAN`` deploys both: the
verifier starts with no oracle (no transfer verifies), and on the devnet its setup registers
the three devnet oracles with a threshold of two; elsewhere the deployer calls ``setOracles``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import Addresses, ContractPlan, Deployment
from zgos.chain.networks import DEVNET_CHAIN_ID
from zgos.inft.devnet import DEVNET_ORACLES, DEVNET_THRESHOLD
from zgos.inft.spec.proofs import ProofDomain, TransferProof

COLLECTION_NAME = "zgos Agent"
COLLECTION_SYMBOL = "ZGA"
DATA_WRITERS = ("mint", "update")  # AgentNFT functions whose caller chooses the data descriptions
MAX_CLONE_DEPTH = 16


@dataclass(frozen=True)
class IntelligentData:
    description: str
    data_hash: bytes


@dataclass(frozen=True)
class Token:
    token_id: int
    owner: str
    datas: tuple[IntelligentData, ...]
    authorized: tuple[str, ...]


def devnet_oracles() -> list[LocalAccount]:
    return [devnet_role("inft-oracle", i) for i in range(DEVNET_ORACLES)]


class InftContracts:
    def __init__(self, chain: Chain, nft: str, verifier: str) -> None:
        self.chain = chain
        self.nft: Contract = chain.contract("AgentNFT", nft)
        self.verifier: Contract = chain.contract("INFTVerifier", verifier)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> InftContracts:
        return cls(chain, deployment.address("AgentNFT"), deployment.address("INFTVerifier"))

    def domain(self) -> ProofDomain:
        return ProofDomain(self.chain.chain_id, self.verifier.address, self.nft.address)

    # --- writes ----------------------------------------------------------------------------

    def mint(self, account: LocalAccount, datas: list[IntelligentData], to: str, sealed_keys: list[bytes]) -> int:
        fn = self.nft.functions.mint([(d.description, d.data_hash) for d in datas], to_checksum_address(to), sealed_keys)
        return self._token_of(self.chain.transact(account, fn))

    def mint_plain(self, account: LocalAccount, to: str) -> int:
        return self._token_of(self.chain.transact(account, self.nft.functions.mint(to_checksum_address(to))))

    def transfer(self, account: LocalAccount, sender: str, to: str, token_id: int, proofs: list[TransferProof]) -> Receipt:
        fn = self.nft.functions.iTransferFrom(to_checksum_address(sender), to_checksum_address(to), token_id,
                                              [p.as_abi() for p in proofs])
        return self.chain.transact(account, fn)

    def clone(self, account: LocalAccount, sender: str, to: str, token_id: int, proofs: list[TransferProof]) -> int:
        fn = self.nft.functions.iCloneFrom(to_checksum_address(sender), to_checksum_address(to), token_id,
                                           [p.as_abi() for p in proofs])
        receipt = self.chain.transact(account, fn)
        return int(receipt.events(self.nft, "Cloned")[0]["args"]["_newTokenId"])

    def authorize(self, account: LocalAccount, token_id: int, user: str) -> Receipt:
        return self.chain.transact(account, self.nft.functions.authorizeUsage(token_id, to_checksum_address(user)))

    def revoke(self, account: LocalAccount, token_id: int, user: str) -> Receipt:
        return self.chain.transact(account, self.nft.functions.revokeAuthorization(token_id, to_checksum_address(user)))

    def publish_executor_keys(self, account: LocalAccount, token_id: int, executor: str, sealed_keys: list[bytes]) -> Receipt:
        fn = self.nft.functions.publishExecutorKeys(token_id, to_checksum_address(executor), sealed_keys)
        return self.chain.transact(account, fn)

    def delegate(self, account: LocalAccount, assistant: str) -> Receipt:
        return self.chain.transact(account, self.nft.functions.delegateAccess(to_checksum_address(assistant)))

    def _token_of(self, receipt: Receipt) -> int:
        return int(receipt.events(self.nft, "Transfer")[0]["args"]["tokenId"])

    # --- reads -----------------------------------------------------------------------------

    def token_count(self) -> int:
        """How many tokens were ever minted (ids 0 .. count - 1; none is burnt)."""
        return int(self.chain.call(self.nft.functions.nextTokenId()))

    def owner_of(self, token_id: int) -> str:
        return str(self.chain.call(self.nft.functions.ownerOf(token_id)))

    def datas_of(self, token_id: int) -> tuple[IntelligentData, ...]:
        return tuple(IntelligentData(str(d[0]), bytes(d[1]))
                     for d in self.chain.call(self.nft.functions.intelligentDatasOf(token_id)))

    def token(self, token_id: int) -> Token:
        authorized = tuple(str(a) for a in self.chain.call(self.nft.functions.authorizedUsersOf(token_id)))
        return Token(token_id, self.owner_of(token_id), self.datas_of(token_id), authorized)

    def is_authorized(self, token_id: int, user: str) -> bool:
        return to_checksum_address(user) in self.token(token_id).authorized

    def delegate_of(self, user: str) -> str:
        return str(self.chain.call(self.nft.functions.getDelegateAccess(to_checksum_address(user))))

    def oracles(self) -> tuple[list[str], int]:
        """The registered oracle addresses and how many must sign."""
        return ([str(a) for a in self.chain.call(self.verifier.functions.oracles())],
                int(self.chain.call(self.verifier.functions.threshold())))

    def sealed_keys(self, token_id: int, owner: str, from_block: int = 0) -> list[bytes] | None:
        """The keys last published to ``owner`` for ``token_id`` (None if none were)."""
        events = self.chain.get_logs(self.nft, "PublishedSealedKey", from_block, self.chain.block_number(),
                                     {"_to": to_checksum_address(owner), "_tokenId": token_id})
        if not events:
            return None
        last = max(events, key=lambda e: (e["blockNumber"], e["logIndex"]))
        return [bytes(k) for k in last["args"]["_sealedKeys"]]

    def description_writer(self, token_id: int, from_block: int = 0, depth: int = 0) -> str | None:
        """The account that wrote ``token_id``'s data descriptions: the sender of its latest
        ``mint`` or ``update``. Transfers and clones carry descriptions over unchanged
        (``AgentNFT._checkProofs``), so they are skipped, and a clone is followed to its source."""
        head = self.chain.block_number()
        updates = self.chain.get_logs(self.nft, "Updated", from_block, head, {"_tokenId": token_id})
        for event in sorted(updates, key=lambda e: (e["blockNumber"], e["logIndex"]), reverse=True):
            tx = self.chain.w3.eth.get_transaction(event["transactionHash"])
            try:
                function, _ = self.nft.decode_function_input(tx["input"])
            except ValueError:  # not a direct call of AgentNFT
                continue
            if function.fn_name in DATA_WRITERS:
                return str(tx["from"])
        clones = self.chain.get_logs(self.nft, "Cloned", from_block, head, {"_newTokenId": token_id})
        if clones and depth < MAX_CLONE_DEPTH:
            return self.description_writer(int(clones[0]["args"]["_tokenId"]), from_block, depth + 1)
        return None

    def tokens_of(self, owner: str, from_block: int = 0) -> list[int]:
        """The tokens ``owner`` holds now (from ``Transfer`` events, checked with ``ownerOf``)."""
        received = self.chain.get_logs(self.nft, "Transfer", from_block, self.chain.block_number(),
                                       {"to": to_checksum_address(owner)})
        ids = sorted({int(e["args"]["tokenId"]) for e in received})
        return [i for i in ids if self.owner_of(i) == to_checksum_address(owner)]


def _register_devnet_oracles(chain: Chain, deployer: LocalAccount, addrs: Addresses) -> None:
    if chain.chain_id != DEVNET_CHAIN_ID:
        return  # elsewhere the deployer names its oracles with setOracles
    verifier = chain.contract("INFTVerifier", addrs["INFTVerifier"])
    chain.transact(deployer, verifier.functions.setOracles([o.address for o in devnet_oracles()], DEVNET_THRESHOLD))


DEPLOY_PLAN: list[ContractPlan] = [
    ContractPlan("INFTVerifier", depends=("Flow",), args=lambda a: [a["Flow"]], setup=_register_devnet_oracles),
    ContractPlan("AgentNFT", depends=("INFTVerifier",),
                 args=lambda a: [COLLECTION_NAME, COLLECTION_SYMBOL, a["INFTVerifier"]]),
]
