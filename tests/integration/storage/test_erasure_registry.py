"""ErasureRegistry: only a data root's uploader records its parity; malformed records revert by
name; a stranger's attempt (or the owner's record that does not fit the file) changes nothing
for download, gateway or repairer."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.storage.conftest import RunningNode
from tests.integration.storage.indexer_fixtures import start_indexer
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.runtime.datadir import DataDir
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract
from zgos.storage.ecclient import ErasureClient, ErasureRecord, ErasureRegistry
from zgos.storage.repairer import RepairWorker
from zgos.storage.spec.erasure import ErasureParams, encode_groups
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.shard import ShardConfig

GROUPS = tuple(ShardConfig(i, 8) for i in range(8))
SEGMENT = 256 * 1024


def _submitted(chain: Chain, deployment: Deployment, account: LocalAccount, data: bytes) -> bytes:
    """Submit ``data``'s root to the Flow as ``account`` (no upload to nodes); its root."""
    tree = FileTree.from_bytes(data)
    FlowContract(chain, deployment.address("Flow")).submit(account, [tree.submission()])
    return tree.root


def _funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


def test_records_are_kept_per_uploader_and_malformed_ones_revert(
    chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    registry = ErasureRegistry(chain, deployment.address("ErasureRegistry"))
    root = _submitted(chain, deployment, new_account, os.urandom(3000))
    parity = _submitted(chain, deployment, new_account, os.urandom(4000))
    record = ErasureRecord(root, parity, ErasureParams(4, 2), GROUPS, new_account.address)
    receipt = registry.record(new_account, record)
    event = receipt.events(registry.contract, "ErasureCoded")[0]["args"]
    assert (event["k"], event["m"], bytes(event["groups"])) == (4, 2, encode_groups(GROUPS))
    assert registry.record_of(root) == record
    replaced = ErasureRecord(root, parity, ErasureParams(2, 1), GROUPS[:4], new_account.address)
    registry.record(new_account, replaced)
    assert registry.record_of(root) == replaced, "the uploader may replace its record (one per root)"
    fn = registry.contract.functions.record
    for args, error in (((0, 2, encode_groups(GROUPS)), "InvalidParams"),
                        ((4, 2, encode_groups(GROUPS)[:-1]), "InvalidGroups"),
                        ((4, 2, encode_groups(GROUPS[:5])), "InvalidGroups")):  # fewer groups than k+m
        with pytest.raises(TxReverted, match=error):
            chain.transact(new_account, fn(root, parity, *args))
    with pytest.raises(TxReverted, match="ParityNotSubmitted"):
        chain.transact(new_account, fn(root, os.urandom(32), 4, 2, encode_groups(GROUPS)))
    with pytest.raises(TxReverted, match="NotUploader"):
        chain.transact(new_account, fn(os.urandom(32), parity, 4, 2, encode_groups(GROUPS)))


def test_a_root_holds_at_most_eight_records(chain: Chain, deployment: Deployment) -> None:
    """Strangers can no longer fill a root's record slots: a root holds one record, its uploader's."""
    owner = _funded(chain)
    root = _submitted(chain, deployment, owner, os.urandom(2000))
    registry = ErasureRegistry(chain, deployment.address("ErasureRegistry"))
    for _ in range(9):
        stranger = _funded(chain)
        parity = _submitted(chain, deployment, stranger, os.urandom(2000))
        with pytest.raises(TxReverted, match="NotUploader"):
            registry.record(stranger, ErasureRecord(root, parity, ErasureParams(4, 2), GROUPS, stranger.address))
    assert registry.record_of(root) is None
    parity = _submitted(chain, deployment, owner, os.urandom(2000))
    mine = ErasureRecord(root, parity, ErasureParams(4, 2), GROUPS, owner.address)
    registry.record(owner, mine)
    assert registry.record_of(root) == mine, "the strangers' attempts did not block the uploader"


def test_a_strangers_erasure_record_changes_nothing(
    tmp_path: Path, storage_node: RunningNode, chain: Chain, deployment: Deployment, devnet_dir: DataDir,
    new_account: LocalAccount,
) -> None:
    """The reviewer's attack: a stranger records k=2, m=1 for another user's plain file. It is
    refused, even after the stranger pays to submit the same file again; and a record that does
    not fit the file (here the owner's own, pointing at a parity file of the wrong size) makes
    readers fall back to the plain download. Download (CLI), gateway and repairer all work."""
    flow = deployment.address("Flow")
    registry = ErasureRegistry(chain, deployment.address("ErasureRegistry"))
    data = os.urandom(3 * SEGMENT + 1000)
    path = tmp_path / "plain.bin"
    path.write_bytes(data)
    with StorageClient([storage_node.url], chain, flow, new_account) as owner:
        root = owner.upload(path).root
    stranger = _funded(chain)
    assert _submitted(chain, deployment, stranger, data) == root  # pays for the same bytes again
    parity = _submitted(chain, deployment, stranger, os.urandom(SEGMENT))
    attack = ErasureRecord(root, parity, ErasureParams(2, 1), tuple(ShardConfig(i, 4) for i in range(4)), stranger.address)
    with pytest.raises(TxReverted, match="NotUploader"):
        registry.record(stranger, attack)
    assert registry.record_of(root) is None
    owner_file = FlowContract(chain, flow).file_of(root)
    assert owner_file is not None and owner_file.submitter == new_account.address, "the first submitter owns it"

    def everything_works(step: str) -> list[str | None]:
        out = tmp_path / f"{step}.bin"
        done = zg(devnet_dir.root, "storage", "download", "0x" + root.hex(), str(out), "--node", storage_node.url)
        assert done.returncode == 0 and out.read_bytes() == data, done.stdout + done.stderr
        gateway = start_indexer(tmp_path / f"gateway-{step}", chain, deployment, peers=(storage_node.url,), registry=False)
        try:
            served = httpx.get(gateway.url + "/file", params={"root": "0x" + root.hex()}, timeout=60)
            assert served.status_code == 200 and served.content == data, served.text[:200]
        finally:
            gateway.stop()
        worker = RepairWorker(chain, registry, lambda: [storage_node.url],
                              lambda urls: ErasureClient(urls, chain, flow, registry.contract.address, timeout_s=10),
                              tmp_path / f"repairer-{step}.json", deployment.deploy_block)
        passes = [worker.run_once(), worker.run_once()]  # a second pass runs after the first
        return [f.error for p in passes for f in p.files if f.root == root]

    assert everything_works("after-stranger") == [], "no record, nothing for the repairer to do"

    # The owner's own record that does not fit: k=2, m=1 pointing at a one-segment "parity".
    wrong = ErasureRecord(root, _submitted(chain, deployment, new_account, os.urandom(SEGMENT)), ErasureParams(2, 1),
                          tuple(ShardConfig(i, 4) for i in range(4)), new_account.address)
    registry.record(new_account, wrong)
    with ErasureClient([storage_node.url], chain, flow, registry.contract.address) as reader:
        assert reader.download(root, tmp_path / "fallback.bin") == len(data)
    assert (tmp_path / "fallback.bin").read_bytes() == data
    errors = everything_works("after-bad-record")
    assert len(errors) == 2 and all(e is not None and "the recorded layout needs" in e for e in errors), errors

    halted = threading.Event()
    halted.set()
    worker = RepairWorker(chain, registry, lambda: [storage_node.url],
                          lambda urls: ErasureClient(urls, chain, flow, registry.contract.address, timeout_s=10),
                          tmp_path / "repairer-halted.json", deployment.deploy_block)
    assert worker.run_once(halted).files == [], "a stopped worker ends its pass before the next file"
    assert root in worker.state.roots, "and it had files to repair"
