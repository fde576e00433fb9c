"""A test-side copy of the flow (all sectors in memory) that finds and builds PoRA answers with
the pure core, so the contract's rules can be exercised without a storage node."""

from __future__ import annotations

import os
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.hashing import keccak256
from zgos.storage.contracts import FlowContract, LogEntry, MineContext
from zgos.storage.spec.answer import (
    EpochRange,
    PoraAnswer,
    compute_answer,
    compute_epoch_ranges,
    compute_seal_proof,
    get_sealing_context,
    is_zero_seal,
)
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import FlowItem, compute_flow_items, compute_sector_data_root
from zgos.storage.spec.merkle import BYTES_PER_SECTOR
from zgos.storage.spec.pora import (
    SECTORS_PER_LOAD,
    Hit,
    compute_owner_miner_id,
    compute_pad_seed,
    compute_pora_hash,
    compute_recall_range,
    compute_scratchpad,
    compute_threshold,
)
from zgos.storage.spec.sealing import BYTES_PER_SEAL, SECTORS_PER_SEAL, seal

from .conftest import EPOCH_BLOCKS


def subtask_digest(context: MineContext) -> bytes:
    """PoraMine's subtask digest of a context (one subtask: no sharded submissions here)."""
    return keccak256(context.digest + context.block_digest)


class LocalFlow:
    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.chain = chain
        self.deployment = deployment
        self.flow = FlowContract(chain, deployment.address("Flow"))
        self.mine = chain.contract("PoraMine", deployment.address("PoraMine"))
        self.reward = chain.contract("Reward", deployment.address("Reward"))
        self.entries: list[LogEntry] = []
        self.flat = bytearray(BYTES_PER_SECTOR)  # sector 0: the placeholder

    # --- building the flow ---------------------------------------------------------------

    def upload(self, account: LocalAccount, data: bytes) -> LogEntry:
        entry = self.flow.submit(account, [FileTree.from_bytes(data).submission()]).entries[0]
        end = (entry.start_entry + entry.sectors) * BYTES_PER_SECTOR
        self.flat.extend(bytes(max(0, end - len(self.flat))))
        start = entry.start_entry * BYTES_PER_SECTOR
        self.flat[start : start + len(data)] = data
        self.entries.append(entry)
        return entry

    def mine_blocks(self, n: int) -> None:
        self.chain.w3.provider.make_request("anvil_mine", [hex(n)])  # type: ignore[arg-type]

    def open_epoch(self) -> MineContext:
        """Move past the next epoch start and record the epoch (its range and context)."""
        self.mine_blocks(EPOCH_BLOCKS + 1)
        self.flow.make_context(devnet_role("deployer"))
        return self.context()

    def context(self) -> MineContext:
        return self.flow.context()

    def ranges(self) -> list[EpochRange]:
        return compute_epoch_ranges(self.flow.epoch_events(0, self.chain.block_number()))

    # --- answers -------------------------------------------------------------------------

    def piece(self, seal_index: int) -> bytes:
        start = seal_index * BYTES_PER_SEAL
        return bytes(self.flat[start : start + BYTES_PER_SEAL].ljust(BYTES_PER_SEAL, b"\0"))

    def sectors(self, first: int, count: int) -> bytes:
        return bytes(self.flat[first * BYTES_PER_SECTOR : (first + count) * BYTES_PER_SECTOR])

    def inner_root(self, item: FlowItem, position: int, height: int) -> bytes:
        return compute_sector_data_root(self.sectors, position, height)

    def proof(self, context: MineContext, seal_index: int) -> list[bytes]:
        prefix = [e for e in self.entries if e.start_entry + e.sectors <= context.flow_length]
        items = compute_flow_items([(e.seq, e.submission) for e in prefix])
        return compute_seal_proof(items, seal_index, context.flow_length, self.inner_root)

    def find_answer(
        self, miner: LocalAccount, context: MineContext, pora_target: int | None = None,
        want: Callable[[bytes], bool] = lambda piece: not is_zero_seal(piece), max_nonces: int = 2000,
    ) -> PoraAnswer:
        """Mine with the pure core until a wanted piece wins; build the answer."""
        miner_id = compute_owner_miner_id(bytes.fromhex(miner.address[2:]))
        target = int(self.chain.call(self.mine.functions.poraTarget())) if pora_target is None else pora_target
        recall_range = compute_recall_range(context.flow_length, 0, 1)
        threshold = compute_threshold(target, recall_range, context.flow_length)
        ranges = self.ranges()
        for _ in range(max_nonces):
            nonce = os.urandom(32)
            pad_seed = compute_pad_seed(miner_id, nonce, subtask_digest(context), recall_range)
            scratchpad, recall_seed = compute_scratchpad(pad_seed)
            load = recall_range.recall_position(recall_seed)
            for offset in range(SECTORS_PER_LOAD // SECTORS_PER_SEAL):
                position = load + offset * SECTORS_PER_SEAL
                index = position // SECTORS_PER_SEAL
                if index == 0 or not want(self.piece(index)):
                    continue
                sealing = get_sealing_context(ranges, index)
                sealed = seal(self.piece(index), miner_id, sealing.digest, position)
                pora_hash = compute_pora_hash(offset, pad_seed, scratchpad, sealed)
                if int.from_bytes(pora_hash, "big") <= threshold:
                    hit = Hit(nonce, position, offset, sealed, pora_hash)
                    return compute_answer(hit, context.digest, miner_id, recall_range, sealing.digest,
                                          self.proof(context, index))
        raise AssertionError("no answer found")
