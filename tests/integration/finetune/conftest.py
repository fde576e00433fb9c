"""Fixtures and helpers shared by the fine-tuning integration tests."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import storage_node  # noqa: F401 - a real storage node fixture
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.finetune.contracts import FineTuningMarket


@pytest.fixture
def market(chain: Chain, deployment: Deployment) -> FineTuningMarket:
    return FineTuningMarket(chain, deployment.address("FineTuningServing"))


def funded_account(chain: Chain, funder: LocalAccount, value: int = 50 * 10**18) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(funder, to=account.address, value=value)
    return account


@pytest.fixture
def user(chain: Chain, new_account: LocalAccount) -> LocalAccount:
    return funded_account(chain, new_account)


def advance_time(chain: Chain, seconds: int) -> None:
    """Move the chain's clock forward and mine a block."""
    chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def task_events(market: FineTuningMarket, event: str, task_id: int) -> list[dict[str, Any]]:
    """The arguments of every ``event`` the contract emitted for ``task_id``."""
    chain = market.chain
    logs = chain.get_logs(market.contract, event, 0, chain.block_number(), {"taskId": task_id})
    return [dict(log["args"]) for log in logs]


def provider_ready(url: str) -> bool:
    """The provider process answers and has finished its set-up (registrations, storage)."""
    import httpx

    try:
        return bool(httpx.get(url + "/health", timeout=5).json().get("ready"))
    except (httpx.HTTPError, ValueError):
        return False
