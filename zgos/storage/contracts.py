"""The storage contracts as Python objects: submit files to the Flow, read Submit events,
read and write erasure records.

``FlowContract`` wraps one deployed ``Flow`` (same ABI as 0G's FixedPriceFlow in TS SDK 1.2.8)
and its ``Market``. Node log sync and the client SDK both use it, so the event decoding and the
fee rule live in one place. ``ErasureRegistry`` wraps the registry of erasure records (data
root -> parity root, k+m, placement groups). ``DEPLOY_PLAN`` is storage's part of the deploy plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import ContractPlan, wire
from zgos.storage.spec.erasure import (
    ErasureParams,
    InvalidErasureParams,
    InvalidLayout,
    decode_groups,
    encode_groups,
)
from zgos.storage.spec.flow import Submission, compute_data_root, compute_fee
from zgos.storage.spec.shard import ShardConfig

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class LogEntry:
    """A ``Submit`` event: one file appended to the flow (0G's node-side ``Transaction``)."""

    seq: int
    sender: str
    submission: Submission
    start_entry: int  # first flow sector of the file
    sectors: int  # sectors charged (Σ 2^height)
    block_number: int
    tx_hash: str

    @property
    def data_root(self) -> bytes:
        return compute_data_root(self.submission.nodes)

    @property
    def size(self) -> int:
        return self.submission.length

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "sender": self.sender, "length": self.submission.length,
            "tags": self.submission.tags.hex(),
            "nodes": [[n.height, n.root.hex()] for n in self.submission.nodes],
            "start": self.start_entry, "sectors": self.sectors,
            "block": self.block_number, "tx": self.tx_hash,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LogEntry:
        from zgos.storage.spec.flow import SubmissionNode

        nodes = tuple(SubmissionNode(bytes.fromhex(r), int(h)) for h, r in value["nodes"])
        return cls(
            seq=int(value["seq"]), sender=str(value["sender"]),
            submission=Submission(int(value["length"]), bytes.fromhex(value["tags"]), nodes),
            start_entry=int(value["start"]), sectors=int(value["sectors"]),
            block_number=int(value["block"]), tx_hash=str(value["tx"]),
        )


def decode_submit_event(event: Any) -> LogEntry:
    args = event["args"]
    data = args["submission"]
    submission = Submission.from_abi((int(data["length"]), bytes(data["tags"]), [
        (bytes(node["root"]), int(node["height"])) for node in data["nodes"]
    ]))
    return LogEntry(
        seq=int(args["submissionIndex"]),
        sender=str(args["sender"]),
        submission=submission,
        start_entry=int(args["startPos"]),
        sectors=int(args["length"]),
        block_number=int(event["blockNumber"]),
        tx_hash=HexBytes(event["transactionHash"]).to_0x_hex(),
    )


@dataclass(frozen=True)
class FileRecord:
    """The first ``Flow`` submission of a data root (``Flow.fileOf``): who submitted it (the
    file's owner for registries) and its byte length (the file's size for every reader)."""

    submitter: str
    size: int


@dataclass(frozen=True)
class SubmitResult:
    entries: tuple[LogEntry, ...]
    tx_hash: str
    gas_used: int
    fee: int


class FlowContract:
    """One deployed Flow and its Market."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract("Flow", self.address)
        self._market: Any = None

    @property
    def market(self) -> Any:
        if self._market is None:
            self._market = self.chain.contract("Market", self.chain.call(self.contract.functions.market()))
        return self._market

    def price_per_sector(self) -> int:
        return int(self.chain.call(self.market.functions.pricePerSector()))

    def fee(self, submissions: Sequence[Submission]) -> int:
        price = self.price_per_sector()
        return sum(compute_fee(s, price) for s in submissions)

    def submit(
        self, account: LocalAccount, submissions: Sequence[Submission], fee: int | None = None
    ) -> SubmitResult:
        """Submit one or more files in one transaction (``submit`` or ``batchSubmit``).

        ``fee`` defaults to the exact fee; an overpayment is refunded by the contract."""
        for submission in submissions:
            submission.validate()
        value = self.fee(submissions) if fee is None else fee
        wrapped = [(s.to_abi(), account.address) for s in submissions]
        if len(wrapped) == 1:
            fn = self.contract.functions.submit(wrapped[0])
        else:
            fn = self.contract.functions.batchSubmit(wrapped)
        receipt = self.chain.transact(account, fn, value=value)
        entries = tuple(decode_submit_event(e) for e in receipt.events(self.contract, "Submit"))
        return SubmitResult(entries, receipt.tx_hash, receipt.gas_used, value)

    def submit_events(self, from_block: int, to_block: int) -> list[LogEntry]:
        events = self.chain.get_logs(self.contract, "Submit", from_block, to_block)
        return [decode_submit_event(e) for e in events]

    def file_of(self, root: bytes) -> FileRecord | None:
        """The first submission of the data root ``root``, or None if it was never submitted."""
        submitter, length = self.chain.call(self.contract.functions.fileOf(root))
        if int(str(submitter), 16) == 0:
            return None
        return FileRecord(to_checksum_address(submitter), int(length))

    def num_submissions(self) -> int:
        return int(self.chain.call(self.contract.functions.numSubmissions()))

    def flow_root_by_seq(self, seq: int) -> bytes:
        return bytes(self.chain.call(self.contract.functions.getFlowRootByTxSeq(seq)))

    def flow_length(self) -> int:
        return int(self.chain.call(self.contract.functions.tree())[0])

    def make_context(self, account: LocalAccount) -> None:
        """Record the current mining epoch (its flow length and context digest)."""
        self.chain.transact(account, self.contract.functions.makeContext())

    def context(self) -> MineContext:
        return MineContext.from_abi(self.chain.call(self.contract.functions.getContext()))

    def epoch_events(self, from_block: int, to_block: int) -> list[tuple[bytes, int]]:
        """``(context digest, flow length)`` of each ``NewEpoch`` in the block range."""
        events = self.chain.get_logs(self.contract, "NewEpoch", from_block, to_block)
        return [(bytes(e["args"]["context"]), int(e["args"]["flowLength"])) for e in events]


# --- PoRA mining and its rewards: PoraMine and Reward (storage.md §2.3-§2.4) ----------------


@dataclass(frozen=True)
class MineContext:
    """The Flow's current mining context (``Flow.getContext``, inside ``computeWorkerContext``)."""

    epoch: int
    mine_start: int
    flow_root: bytes
    flow_length: int
    block_digest: bytes
    digest: bytes

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> MineContext:
        epoch, start, root, length, block_digest, digest = value
        return cls(int(epoch), int(start), bytes(root), int(length), bytes(block_digest), bytes(digest))


@dataclass(frozen=True)
class WorkerContext:
    """What a miner needs for this epoch (``PoraMine.computeWorkerContext``)."""

    context: MineContext
    subtask_digest: bytes
    pora_target: int
    max_shards: int
    can_submit: bool


@dataclass(frozen=True)
class AnswerReceipt:
    """An accepted PoRA answer: the reward it was paid (``NewSubmission``) and its transaction."""

    reward: int
    tx_hash: str
    gas_used: int


@dataclass(frozen=True)
class RewardPool:
    """One 8 GiB pricing chunk's pool (``Reward.rewards``)."""

    total: int
    released_at_start: int
    distributed: int
    start_time: int  # 0: the chunk is not full yet, nothing releases


class PoraMine:
    """One deployed PoraMine: miner registration, worker context and answer submission."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract("PoraMine", self.address)

    def beneficiary(self, miner_id: bytes) -> str | None:
        """The address paid for ``miner_id``'s answers; None if it never registered."""
        value = str(self.chain.call(self.contract.functions.beneficiaries(miner_id)))
        return None if int(value, 16) == 0 else to_checksum_address(value)

    def register(self, account: LocalAccount, beneficiary: str) -> None:
        """Register ``account``'s miner id paying ``beneficiary`` (again: change it)."""
        self.chain.transact(account, self.contract.functions.register(beneficiary))

    def last_rewarded_epoch(self, miner_id: bytes) -> int:
        return int(self.chain.call(self.contract.functions.lastRewardedEpoch(miner_id)))

    def pora_target(self) -> int:
        return int(self.chain.call(self.contract.functions.poraTarget()))

    def worker_context(self, miner_id: bytes) -> WorkerContext:
        """This epoch's mining context as ``miner_id`` sees it (an ``eth_call``, no transaction)."""
        context, subtask_digest, pora_target, max_shards, can_submit = self.chain.call(
            self.contract.functions.computeWorkerContext(miner_id))
        return WorkerContext(MineContext.from_abi(context), bytes(subtask_digest), int(pora_target),
                             int(max_shards), bool(can_submit))

    def submit(self, account: LocalAccount, answer: tuple[Any, ...]) -> AnswerReceipt:
        """Submit a PoRA answer (``PoraAnswer.to_abi()``); a refused answer raises the revert."""
        receipt = self.chain.transact(account, self.contract.functions.submit(answer))
        events = receipt.events(self.contract, "NewSubmission")
        reward = int(events[0]["args"]["reward"]) if events else 0
        return AnswerReceipt(reward, receipt.tx_hash, receipt.gas_used)

    def submission_epochs(self, from_block: int, to_block: int) -> list[int]:
        """The epochs of the ``NewSubmission`` events in the block range."""
        events = self.chain.get_logs(self.contract, "NewSubmission", from_block, to_block)
        return [int(e["args"]["epoch"]) for e in events]


class Reward:
    """One deployed Reward: the storage fees' pools and what they paid."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract("Reward", self.address)

    def _uint(self, name: str, *args: Any) -> int:
        return int(self.chain.call(self.contract.functions[name](*args)))

    def pool(self, index: int) -> RewardPool:
        total, released, distributed, start = self.chain.call(self.contract.functions.rewards(index))
        return RewardPool(int(total), int(released), int(distributed), int(start))

    def released(self, index: int) -> int:
        return self._uint("releasedReward", index)

    def total_deposited(self) -> int:
        return self._uint("totalDeposited")

    def total_distributed(self) -> int:
        return self._uint("totalDistributed")

    def release_seconds(self) -> int:
        return self._uint("releaseSeconds")

    def claimed_by(self, address: str) -> int:
        return self._uint("claimedBy", to_checksum_address(address))

    def owed(self, address: str) -> int:
        return self._uint("owed", to_checksum_address(address))


@dataclass(frozen=True)
class ErasureRecord:
    """An ``ErasureRegistry`` record: the parity file and layout of one data root, by its uploader."""

    data_root: bytes
    parity_root: bytes
    params: ErasureParams
    groups: tuple[ShardConfig, ...]
    uploader: str


class ErasureRegistry:
    """Typed access to the ``ErasureRegistry`` contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract("ErasureRegistry", address)

    def flow_address(self) -> str:
        """The ``Flow`` whose first submitters own the records."""
        return str(self.chain.call(self.contract.functions.flow()))

    def record_of(self, data_root: bytes) -> ErasureRecord | None:
        """The record of ``data_root`` (written by its first Flow submitter), or None; a
        malformed one is logged and ignored."""
        parity_root, k, m, uploader, _at, groups = self.chain.call(self.contract.functions.recordOf(data_root))
        if int(str(uploader), 16) == 0:
            return None
        try:
            return ErasureRecord(data_root, bytes(parity_root), ErasureParams(int(k), int(m)),
                                 decode_groups(bytes(groups)), str(uploader))
        except (InvalidLayout, InvalidErasureParams) as exc:
            log.warning("ignoring the malformed erasure record of 0x%s by %s: %s", data_root.hex(), uploader, exc.message)
            return None

    def record(self, account: LocalAccount, record: ErasureRecord) -> Receipt:
        fn = self.contract.functions.record(record.data_root, record.parity_root, record.params.k,
                                            record.params.m, encode_groups(record.groups))
        return self.chain.transact(account, fn)

    def recorded_roots(self, from_block: int, to_block: int) -> list[bytes]:
        """The data roots of the ``ErasureCoded`` events in the block range, in order."""
        return [bytes(event["args"]["dataRoot"])
                for event in self.chain.get_logs(self.contract, "ErasureCoded", from_block, to_block)]


# --- Storage's part of the deploy plan (zgos.devnet.plan) ------------------------------------

# Fees flow Flow -> Market -> Reward (storage.md §2). The devnet price is 0G mainnet's (3 months
# at 1 0G/GiB/year); epochs of 200 blocks as 0G's standard testnet.
STORAGE_PRICE_PER_SECTOR = 232_830_643  # wei
STORAGE_REWARD_RELEASE_S = 3 * 31 * 86_400
STORAGE_BLOCKS_PER_EPOCH = 200
# PoRA mining (storage.md §2.4): an easy start (a devnet node at a few % of a core answers within
# seconds), adjusted toward 0G testnet's 10 answers per epoch.
MINE_INITIAL_DIFFICULTY = 4096
MINE_TARGET_SUBMISSIONS = 10
MINE_MIN_DIFFICULTY = 1

DEPLOY_PLAN: list[ContractPlan] = [
    ContractPlan("Reward", args=lambda _: [STORAGE_REWARD_RELEASE_S]),
    ContractPlan(
        "Market",
        depends=("Reward",),
        args=lambda a: [a["Reward"], STORAGE_PRICE_PER_SECTOR],
        setup=wire("Reward", "setMarket", "Market"),
    ),
    ContractPlan(
        "Flow",
        depends=("Market",),
        args=lambda a: [a["Market"], STORAGE_BLOCKS_PER_EPOCH, 0],
        setup=wire("Market", "setFlow", "Flow"),
    ),
    # data root -> erasure-coding parity (zgos/storage/spec/erasure.py), written by the root's uploader
    ContractPlan("ErasureRegistry", depends=("Flow",), args=lambda a: [a["Flow"]]),
    ContractPlan("PoraVerifier"),
    ContractPlan(
        "PoraMine",
        depends=("Flow", "Reward"),
        args=lambda a: [a["Flow"], a["Reward"], MINE_INITIAL_DIFFICULTY, MINE_TARGET_SUBMISSIONS, MINE_MIN_DIFFICULTY],
        setup=wire("Reward", "setMine", "PoraMine"),
    ),
]
