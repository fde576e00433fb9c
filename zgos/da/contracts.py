"""Typed access to the ``DASigners`` and ``DAEntrance`` contracts.

One object (``DAContracts``) wraps both: reading quorums and blobs, registering signers,
submitting blobs and certificates. ``DEPLOY_PLAN`` deploys both with the parameters of
``zgos.da.spec.params`` (epoch length, stake, fee).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import blspy
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import ContractPlan
from zgos.core.errors import TxReverted, ZgError
from zgos.da.spec import bls, params
from zgos.da.spec.assignment import columns_of
from zgos.da.spec.blob import BlobHeader
from zgos.da.spec.params import SIGNER_STAKE_WEI

QUORUM_PAGE_SIZE = 256  # = DASigners.MAX_PAGE

DEPLOY_PLAN: list[ContractPlan] = [  # DA's part (zgos.devnet.plan)
    ContractPlan("DASigners", args=lambda _: [params.EPOCH_BLOCKS, params.MIN_STAKE_WEI, params.EXIT_DELAY_EPOCHS]),
    ContractPlan("DAEntrance", depends=("DASigners",), args=lambda a: [a["DASigners"], params.FEE_PER_ROW_WEI]),
]


class BlobStatus(enum.IntEnum):
    NONE = 0
    SUBMITTED = 1
    CERTIFIED = 2
    CANCELLED = 3


class UnknownBlob(ZgError):
    """No blob with this id was submitted to the DAEntrance contract."""


class NoActiveSigners(TxReverted):
    """``submitBlob`` reverted because the current epoch's quorum holds no stake (right after
    the first signers register, until the next epoch starts)."""


@dataclass(frozen=True)
class Quorum:
    """An epoch's signers (registration order), stakes, URLs and the column of each."""

    epoch: int
    members: tuple[str, ...]
    stakes: tuple[int, ...]
    urls: tuple[str, ...]
    column_owners: tuple[int, ...]

    @property
    def total_stake(self) -> int:
        return sum(self.stakes)

    def columns(self, member: str) -> list[int]:
        return columns_of(self.column_owners, self.members.index(to_checksum_address(member)))

    def index(self, member: str) -> int:
        return self.members.index(to_checksum_address(member))

    def signed_stake(self, signers: Iterable[str]) -> int:
        """The stake held by ``signers`` (members of this quorum)."""
        return sum(self.stakes[self.index(signer)] for signer in signers)


@dataclass(frozen=True)
class BlobRecord:
    blob_id: bytes
    submitter: str
    epoch: int
    size: int
    status: BlobStatus
    fee: int


@dataclass(frozen=True)
class SubmittedBlob:
    blob_id: bytes
    epoch: int
    quorum_id: int
    receipt: Receipt


class DAContracts:
    def __init__(self, chain: Chain, signers_address: str, entrance_address: str) -> None:
        self.chain = chain
        self.signers: Contract = chain.contract("DASigners", signers_address)
        self.entrance: Contract = chain.contract("DAEntrance", entrance_address)
        self._epoch_reached = -1  # the chain has reached this epoch: its quorum and earlier ones are fixed

    @classmethod
    def from_addresses(cls, chain: Chain, addresses: dict[str, str]) -> DAContracts:
        return cls(chain, addresses["DASigners"], addresses["DAEntrance"])

    # --- reading -------------------------------------------------------------------------

    def current_epoch(self) -> int:
        return int(self.chain.call(self.signers.functions.currentEpoch()))

    def read_quorum(self, epoch: int, page_size: int = QUORUM_PAGE_SIZE) -> Quorum:
        """``epoch``'s quorum, read a page of the signer list at a time (``getQuorumPage``: the
        list only grows, so no single call may walk all of it), with the columns dealt on chain."""
        members: list[str] = []
        stakes: list[int] = []
        urls: list[str] = []
        count, offset = int(self.chain.call(self.signers.functions.signerCount())), 0
        while offset < count:
            page_members, page_stakes, page_urls, following = self.chain.call(
                self.signers.functions.getQuorumPage(epoch, offset, page_size))
            members += page_members
            stakes += [int(s) for s in page_stakes]
            urls += page_urls
            if int(following) <= offset:  # a contract that does not advance: stop, never loop
                raise ZgError(f"DASigners.getQuorumPage did not advance past signer {offset}")
            offset = int(following)
        seed = self.chain.call(self.signers.functions.epochSeed(epoch))
        owners = self.chain.call(self.signers.functions.assignColumns(stakes, seed))
        return Quorum(epoch, tuple(members), tuple(stakes), tuple(urls), tuple(owners))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - quorums of past and current epochs never change
    def _quorum(self, epoch: int) -> Quorum:
        return self.read_quorum(epoch)

    def quorum(self, epoch: int) -> Quorum:
        if epoch > self._epoch_reached:
            self._epoch_reached = max(self._epoch_reached, self.current_epoch())
        if epoch > self._epoch_reached:
            # Future epochs can still change (registrations for next epoch): do not cache.
            return self.read_quorum(epoch)
        return self._quorum(epoch)

    def pubkey(self, signer: str) -> bytes:
        """``signer``'s BLS key, read once (DASigners never changes a registered key)."""
        return self._pubkey(to_checksum_address(signer))

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - see pubkey
    def _pubkey(self, signer: str) -> bytes:
        return self._read_pubkey(signer)

    def _read_pubkey(self, signer: str) -> bytes:
        return bytes(self.chain.call(self.signers.functions.getSigner(to_checksum_address(signer)))[0])

    def signer_url(self, signer: str) -> str:
        """The URL ``signer`` registered (raises ``TxReverted`` for an unknown signer)."""
        return str(self.chain.call(self.signers.functions.getSigner(to_checksum_address(signer)))[1])

    def quorum_stake(self, epoch: int) -> int:
        """The total stake of ``epoch``'s quorum (0: no active signer)."""
        total, _ = self.chain.call(self.signers.functions.quorumStake(epoch))
        return int(total)

    def _had_no_quorum(self) -> bool:
        """True if the current epoch, or the one before it (a revert just before the boundary),
        has no stake in its quorum."""
        epoch = self.current_epoch()
        return self.quorum_stake(epoch) == 0 or (epoch > 0 and self.quorum_stake(epoch - 1) == 0)

    def is_registered(self, signer: str) -> bool:
        try:
            self._read_pubkey(signer)  # not cached: False while the chain is unreachable
        except ZgError:
            return False
        return True

    def blob(self, blob_id: bytes) -> BlobRecord:
        submitter, epoch, size, status, fee = self.chain.call(self.entrance.functions.getBlob(blob_id))
        if BlobStatus(status) is BlobStatus.NONE:
            raise UnknownBlob(f"no blob 0x{blob_id.hex()} on chain", "check the blob id")
        return BlobRecord(blob_id, submitter, int(epoch), int(size), BlobStatus(status), int(fee))

    @functools.cached_property
    def epoch_blocks(self) -> int:
        """Blocks per epoch (immutable in ``DASigners``)."""
        return int(self.chain.call(self.signers.functions.epochBlocks()))

    def header(self, blob_id: bytes, record: BlobRecord | None = None) -> BlobHeader:
        """The blob's size and row commitments, from its ``BlobSubmitted`` event (checked);
        ``record`` is the blob's record if the caller just read it."""
        record = record or self.blob(blob_id)
        start = int(self.chain.call(self.signers.functions.epochStartBlock(record.epoch)))
        end = start + self.epoch_blocks - 1
        logs = self.chain.get_logs(
            self.entrance, "BlobSubmitted", start, min(end, self.chain.block_number()),
            argument_filters={"blobId": blob_id},
        )
        for log in logs:
            header = BlobHeader.decode(int(log["args"]["size"]), bytes(log["args"]["commitments"]))
            if header.blob_id(record.submitter) == blob_id:
                return header
        raise UnknownBlob(f"no BlobSubmitted event for 0x{blob_id.hex()} in epoch {record.epoch}")

    def signing_message(self, blob_id: bytes, epoch: int, quorum_id: int = 0) -> bytes:
        return bls.signing_message(self.chain.chain_id, self.entrance.address, blob_id, epoch, quorum_id)

    def blob_fee(self, size: int) -> int:
        return int(self.chain.call(self.entrance.functions.blobFee(size)))

    def earnings(self, account: str) -> int:
        return int(self.chain.call(self.entrance.functions.earnings(to_checksum_address(account))))

    # --- writing -------------------------------------------------------------------------

    def register(
        self, account: LocalAccount, secret: blspy.PrivateKey, url: str, stake: int = SIGNER_STAKE_WEI
    ) -> Receipt:
        pubkey = bls.public_key(secret)
        return self.chain.transact(
            account,
            self.signers.functions.register(
                bls.g1_to_eip2537(pubkey), pubkey, bls.g2_to_eip2537(bls.prove_possession(secret)), url
            ),
            value=stake,
        )

    def update_url(self, account: LocalAccount, url: str) -> Receipt:
        return self.chain.transact(account, self.signers.functions.updateUrl(url))

    def submit_blob(self, account: LocalAccount, header: BlobHeader, fee: int | None = None) -> SubmittedBlob:
        """Submit the blob, paying its fee; raises ``NoActiveSigners`` if the current epoch has no
        quorum (told by reading the quorum's stake after a revert, not from the revert text)."""
        value = self.blob_fee(header.size) if fee is None else fee
        try:
            receipt = self.chain.transact(
                account, self.entrance.functions.submitBlob(header.size, header.encode_commitments()), value=value
            )
        except TxReverted as exc:
            if self._had_no_quorum():
                raise NoActiveSigners(exc.reason, "wait for the next epoch: signers registered for it") from None
            raise
        (event,) = receipt.events(self.entrance, "BlobSubmitted")
        args: Any = event["args"]
        return SubmittedBlob(bytes(args["blobId"]), int(args["epoch"]), int(args["quorumId"]), receipt)

    def submit_certificate(
        self, account: LocalAccount, blob_id: bytes, members: list[str], signature: bytes
    ) -> Receipt:
        ordered = sorted((to_checksum_address(m) for m in members), key=lambda a: int(a, 16))
        return self.chain.transact(
            account,
            self.entrance.functions.submitCertificate(blob_id, ordered, bls.g2_to_eip2537(signature)),
        )

    def cancel_blob(self, account: LocalAccount, blob_id: bytes) -> Receipt:
        return self.chain.transact(account, self.entrance.functions.cancelBlob(blob_id))
