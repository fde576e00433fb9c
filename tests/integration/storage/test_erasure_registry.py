"""ErasureRegistry: records link a data root to its parity; malformed records revert by name."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.storage.ecclient import ErasureRecord, ErasureRegistry
from zgos.storage.erasure import ErasureParams, encode_groups
from zgos.storage.shard import ShardConfig

GROUPS = tuple(ShardConfig(i, 8) for i in range(8))


def test_records_are_kept_per_uploader_and_malformed_ones_revert(
    chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    registry = ErasureRegistry(chain, deployment.address("ErasureRegistry"))
    root, parity = os.urandom(32), os.urandom(32)
    record = ErasureRecord(root, parity, ErasureParams(4, 2), GROUPS, new_account.address)
    receipt = registry.record(new_account, record)
    event = receipt.events(registry.contract, "ErasureCoded")[0]["args"]
    assert (event["k"], event["m"], bytes(event["groups"])) == (4, 2, encode_groups(GROUPS))
    assert registry.records(root) == [record]
    assert registry.recorded_by(root, new_account.address)
    with pytest.raises(TxReverted, match="AlreadyRecorded"):
        registry.record(new_account, record)
    fn = registry.contract.functions.record
    for args, error in (((0, 2, encode_groups(GROUPS)), "InvalidParams"),
                        ((4, 2, encode_groups(GROUPS)[:-1]), "InvalidGroups"),
                        ((4, 2, encode_groups(GROUPS[:5])), "InvalidGroups")):  # fewer groups than k+m
        with pytest.raises(TxReverted, match=error):
            chain.transact(new_account, fn(os.urandom(32), parity, *args))


def test_a_root_holds_at_most_eight_records(chain: Chain, deployment: Deployment) -> None:
    registry = ErasureRegistry(chain, deployment.address("ErasureRegistry"))
    root = os.urandom(32)
    for _ in range(9):
        account: LocalAccount = Account.create()
        chain.transact(devnet_role("deployer"), to=account.address, value=10**17)
        record = ErasureRecord(root, os.urandom(32), ErasureParams(4, 2), GROUPS, account.address)
        if len(registry.records(root)) < 8:
            registry.record(account, record)
        else:
            with pytest.raises(TxReverted, match="TooManyRecords"):
                registry.record(account, record)
    assert len(registry.records(root)) == 8
