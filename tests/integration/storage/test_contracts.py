"""Flow, Market and Reward on a real anvil: placement, fees, refunds, flow root, pools."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.storage.contracts import (
    STORAGE_BLOCKS_PER_EPOCH,
    STORAGE_PRICE_PER_SECTOR,
    STORAGE_REWARD_RELEASE_S,
    FlowContract,
)
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import FlowTree, Submission, SubmissionNode, compute_submission_digest


@pytest.fixture
def flow(chain: Chain, deployment: Deployment) -> FlowContract:
    return FlowContract(chain, deployment.address("Flow"))


def replay_flow_tree(flow: FlowContract, upto: int) -> FlowTree:
    tree = FlowTree()
    for entry in sorted(flow.submit_events(0, flow.chain.block_number()), key=lambda e: e.seq):
        if entry.seq <= upto:
            placed = tree.append_submission(entry.submission)
            assert placed.start == entry.start_entry
    return tree


def test_submit_places_the_file_charges_the_fee_and_matches_the_flow_root(
    flow: FlowContract, new_account: LocalAccount
) -> None:
    files = [FileTree.from_bytes(bytes([i]) * size) for i, size in enumerate((300, 262_145, 5000))]
    before = flow.chain.balance(new_account.address)
    result = flow.submit(new_account, [t.submission() for t in files], fee=10**18)
    assert [e.data_root for e in result.entries] == [t.root for t in files]
    assert result.entries[0].sectors == 2
    spent = before - flow.chain.balance(new_account.address)
    fee = sum(t.submission().sectors for t in files) * STORAGE_PRICE_PER_SECTOR
    gas_cost = spent - fee
    assert 0 < gas_cost < 10**16, "the 1 0G overpayment was refunded"
    last = result.entries[-1]
    tree = replay_flow_tree(flow, last.seq)
    assert flow.flow_root_by_seq(last.seq) == tree.root
    for entry in result.entries:
        start, end = entry.start_entry, entry.start_entry + entry.sectors
        assert start // 1024 == (end - 1) // 1024 or start % 1024 == 0


def test_submit_event_identity_is_the_submission_digest(flow: FlowContract, new_account: LocalAccount) -> None:
    submission = FileTree.from_bytes(b"hello").submission()
    receipt = flow.submit(new_account, [submission])
    events = flow.chain.get_logs(flow.contract, "Submit", receipt.entries[0].block_number, receipt.entries[0].block_number)
    identities = [bytes(e["args"]["identity"]) for e in events]
    assert compute_submission_digest(submission) in identities


def test_underpaid_submit_reverts_with_not_enough_fee(flow: FlowContract, new_account: LocalAccount) -> None:
    submission = FileTree.from_bytes(b"x" * 4096).submission()
    with pytest.raises(TxReverted, match="NotEnoughFee"):
        flow.submit(new_account, [submission], fee=1)


def test_invalid_submission_reverts(flow: FlowContract, new_account: LocalAccount) -> None:
    bad = Submission(10, b"", (SubmissionNode(bytes(32), 4),))  # 10 bytes in 16 sectors
    wrapped = (bad.to_abi(), new_account.address)
    with pytest.raises(TxReverted, match="InvalidSubmission"):
        flow.chain.transact(new_account, flow.contract.functions.submit(wrapped), value=10**18)


def test_fees_land_in_the_pricing_chunk_reward_pool(flow: FlowContract, new_account: LocalAccount, deployment: Deployment) -> None:
    reward = flow.chain.contract("Reward", deployment.address("Reward"))
    locked_before = flow.chain.call(reward.functions.rewards(0))[0]
    submission = FileTree.from_bytes(b"y" * 70_000).submission()
    entry = flow.submit(new_account, [submission]).entries[0]
    pool = flow.chain.call(reward.functions.rewards(0))
    assert pool[0] - locked_before == submission.sectors * STORAGE_PRICE_PER_SECTOR
    filled_at = flow.chain.w3.eth.get_block(entry.block_number)["timestamp"]
    assert pool[3] == filled_at, "a fill restarts the chunk's linear release (no waiting for 8 GiB)"


def test_full_pricing_chunk_releases_its_pool_linearly(
    flow: FlowContract, new_account: LocalAccount, deployment: Deployment
) -> None:
    reward = flow.chain.contract("Reward", deployment.address("Reward"))
    chunk = 1 << 25
    before = flow.flow_length()
    index = -(-before // chunk)  # the first chunk a 2^25-sector node can fill from its start
    submission = Submission(chunk * 256, b"", (SubmissionNode(b"\x42" * 32, 25),))
    entry = flow.submit(new_account, [submission]).entries[0]
    assert entry.start_entry == index * chunk
    pool = flow.chain.call(reward.functions.rewards(index))
    total, start_time = pool[0], pool[3]
    fee = chunk * STORAGE_PRICE_PER_SECTOR
    gap = entry.start_entry - before
    assert total == fee - fee * gap // (chunk + gap), "the fee is split between the gap and the data"
    assert start_time > 0, "the filled chunk releases"
    flow.chain.w3.provider.make_request("evm_increaseTime", [STORAGE_REWARD_RELEASE_S // 4])  # type: ignore[arg-type]
    flow.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    released = flow.chain.call(reward.functions.releasedReward(index))
    assert abs(released - total // 4) <= total // 100, "a quarter of the lifetime releases a quarter"


def test_a_new_epoch_snapshots_the_flow_root_into_the_context_digest(flow: FlowContract, new_account: LocalAccount) -> None:
    from eth_abi import encode

    from zgos.core.hashing import keccak256

    flow.chain.w3.provider.make_request("anvil_mine", [hex(STORAGE_BLOCKS_PER_EPOCH + 1)])  # type: ignore[arg-type]
    submission = FileTree.from_bytes(b"epoch").submission()
    receipt = flow.chain.transact(new_account, flow.contract.functions.submit((submission.to_abi(), new_account.address)), value=10**18)
    epochs = receipt.events(flow.contract, "NewEpoch")
    assert epochs, "the first submit after an epoch boundary opens the epoch"
    context = flow.chain.call(flow.contract.functions.getContext())
    epoch, mine_start, flow_root, flow_length, block_digest, digest = context
    assert epoch == epochs[-1]["args"]["index"]
    assert block_digest == bytes(flow.chain.w3.eth.get_block(mine_start)["hash"])
    assert digest == keccak256(encode(["bytes32", "bytes32", "uint256"], [block_digest, flow_root, flow_length]))
    start, end = flow.chain.call(flow.contract.functions.getEpochRange(digest))
    assert end == flow_length and start <= end
