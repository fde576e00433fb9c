"""What a deployment will cost, before anything is paid (``zg chain deploy --dry-run``).

The whole plan is deployed, setup steps included, on a local anvil that forks the target chain
at its latest block (``anvil --fork-url``): constructors and setup calls that read earlier
contracts run against real code, so each contract's gas is what the real deployment uses, not a
guess from placeholder addresses. The deployer's balance on the fork is topped up so the
estimate works before the account is funded; nothing is sent to the target chain. The gas is
priced at the target chain's current gas price (``eth_gasPrice``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import ContractPlan, deploy_all
from zgos.runtime.netutil import free_port

FORK_BALANCE_WEI = 10**30  # the deployer's balance on the fork: more than any plan needs


@dataclass(frozen=True)
class DeployEstimate:
    """Gas per contract (its deployment and setup transactions), the gas price it is priced at
    and what the deployer holds on the target chain."""

    gas: dict[str, int]
    gas_price_wei: int
    deployer_balance_wei: int

    @property
    def total_gas(self) -> int:
        return sum(self.gas.values())

    @property
    def total_cost_wei(self) -> int:
        return self.total_gas * self.gas_price_wei


class MeteredChain(Chain):
    """A ``Chain`` that adds up the gas its transactions used since ``take_gas`` last ran."""

    def __init__(self, rpc_url: str) -> None:
        super().__init__(rpc_url, confirmations=0)
        self._gas = 0

    def transact(self, account: LocalAccount, fn: Any = None, **kwargs: Any) -> Receipt:
        receipt = super().transact(account, fn, **kwargs)
        self._gas += receipt.gas_used
        return receipt

    def take_gas(self) -> int:
        used, self._gas = self._gas, 0
        return used


def estimate_deployment(rpc_url: str, deployer: LocalAccount, plan: list[ContractPlan],
                        log_path: Path | None = None) -> DeployEstimate:
    """Deploy ``plan`` on a fork of ``rpc_url`` and return its gas and cost (module docstring)."""
    live = Chain(rpc_url)
    fork = Anvil(AnvilConfig(port=free_port(), chain_id=live.chain_id, block_time_s=None, fork_url=rpc_url),
                 log_path=log_path)
    fork.start()
    try:
        chain = MeteredChain(fork.url)
        chain.w3.provider.make_request("anvil_setBalance", [deployer.address, hex(FORK_BALANCE_WEI)])  # type: ignore[arg-type]
        gas: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="zgos-dry-run-") as scratch:
            deploy_all(chain, deployer, Path(scratch) / "deployment.json", plan,
                       on_item=lambda name: gas.__setitem__(name, chain.take_gas()))
    finally:
        fork.stop()
    return DeployEstimate(gas, int(live.w3.eth.gas_price), live.balance(deployer.address))
