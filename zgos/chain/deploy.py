"""Deploy the zgos contract set in dependency order and record it in ``deployment.json``.

Deployment is idempotent: a contract already deployed from the same bytecode (and whose
dependencies were not redeployed) is kept; anything new or changed is deployed.
Each network adds its contracts to ``PLAN``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from zgos.chain.artifacts import load_artifact
from zgos.chain.client import Chain
from zgos.compute.finetune import tasks as ft_tasks
from zgos.core.errors import ConfigError
from zgos.core.hashing import keccak256
from zgos.da import params as da

Addresses = dict[str, str]


@dataclass(frozen=True)
class ContractPlan:
    """How to deploy one contract: constructor arguments from already-deployed addresses,
    and an optional setup step run once right after deployment."""

    name: str
    depends: tuple[str, ...] = ()
    args: Callable[[Addresses], list[Any]] = lambda _: []
    setup: Callable[[Chain, LocalAccount, Addresses], None] | None = None


# Storage: fees flow Flow -> Market -> Reward (storage.md §2). The devnet price is 0G
# mainnet's (3 months at 1 0G/GiB/year); epochs of 200 blocks as 0G's standard testnet.
STORAGE_PRICE_PER_SECTOR = 232_830_643  # wei
STORAGE_REWARD_RELEASE_S = 3 * 31 * 86_400
STORAGE_BLOCKS_PER_EPOCH = 200
# PoRA mining (storage.md §2.4): an easy start (a devnet node at a few % of a core answers within
# seconds), adjusted toward 0G testnet's 10 answers per epoch.
MINE_INITIAL_DIFFICULTY = 4096
MINE_TARGET_SUBMISSIONS = 10
MINE_MIN_DIFFICULTY = 1


def _wire(contract: str, method: str, target: str) -> Callable[[Chain, LocalAccount, Addresses], None]:
    def setup(chain: Chain, deployer: LocalAccount, addrs: Addresses) -> None:
        handle = chain.contract(contract, addrs[contract])
        chain.transact(deployer, getattr(handle.functions, method)(addrs[target]))

    return setup


def _authorize_serving(name: str) -> Callable[[Chain, LocalAccount, Addresses], None]:
    """Setup step: let a serving contract charge sub-accounts in the LedgerManager."""

    def setup(chain: Chain, deployer: LocalAccount, addresses: Addresses) -> None:
        ledger = chain.contract("LedgerManager", addresses["LedgerManager"])
        chain.transact(deployer, ledger.functions.setServing(addresses[name], True))

    return setup


REFUND_LOCK_TIME_S = 86400  # compute refunds unlock after 24 h (0G's default, compute.md §2)

PLAN: list[ContractPlan] = [
    ContractPlan("NodeRegistry"),
    ContractPlan("Reward", args=lambda _: [STORAGE_REWARD_RELEASE_S]),
    ContractPlan(
        "Market",
        depends=("Reward",),
        args=lambda a: [a["Reward"], STORAGE_PRICE_PER_SECTOR],
        setup=_wire("Reward", "setMarket", "Market"),
    ),
    ContractPlan(
        "Flow",
        depends=("Market",),
        args=lambda a: [a["Market"], STORAGE_BLOCKS_PER_EPOCH, 0],
        setup=_wire("Market", "setFlow", "Flow"),
    ),
    # data root -> erasure-coding parity (zgos/storage/erasure.py), written by the root's uploader
    ContractPlan("ErasureRegistry", depends=("Flow",), args=lambda a: [a["Flow"]]),
    ContractPlan("PoraVerifier"),
    ContractPlan(
        "PoraMine",
        depends=("Flow", "Reward"),
        args=lambda a: [a["Flow"], a["Reward"], MINE_INITIAL_DIFFICULTY, MINE_TARGET_SUBMISSIONS, MINE_MIN_DIFFICULTY],
        setup=_wire("Reward", "setMine", "PoraMine"),
    ),
    ContractPlan("LedgerManager", args=lambda _: [REFUND_LOCK_TIME_S]),
    ContractPlan(
        "InferenceServing",
        depends=("LedgerManager",),
        args=lambda a: [a["LedgerManager"]],
        setup=_authorize_serving("InferenceServing"),
    ),
    ContractPlan("DASigners", args=lambda _: [da.EPOCH_BLOCKS, da.MIN_STAKE_WEI, da.EXIT_DELAY_EPOCHS]),
    ContractPlan(
        "DAEntrance", depends=("DASigners",), args=lambda a: [a["DASigners"], da.FEE_PER_ROW_WEI]
    ),
    ContractPlan(
        "FineTuningServing",
        args=lambda _: [ft_tasks.ACK_TIMEOUT_S, ft_tasks.DELIVERY_TIMEOUT_S, ft_tasks.PENALTY_PERCENT],
    ),
    ContractPlan(
        "ModelRegistry",
        depends=("FineTuningServing", "Flow"),
        args=lambda addrs: [addrs["FineTuningServing"], addrs["Flow"]],
    ),
]


@dataclass
class Deployment:
    chain_id: int
    deploy_block: int
    addresses: Addresses = field(default_factory=dict)
    code_hashes: dict[str, str] = field(default_factory=dict)

    def address(self, name: str) -> str:
        try:
            return self.addresses[name]
        except KeyError:
            raise ConfigError(
                f"the deployment has no {name} contract", "redeploy with `zg chain deploy`"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "deployBlock": self.deploy_block,
            "contracts": {
                name: {"address": address, "codeHash": self.code_hashes.get(name, "")}
                for name, address in self.addresses.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        contracts = data["contracts"]
        return cls(
            chain_id=int(data["chainId"]),
            deploy_block=int(data["deployBlock"]),
            addresses={name: entry["address"] for name, entry in contracts.items()},
            code_hashes={name: entry.get("codeHash", "") for name, entry in contracts.items()},
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)


def load_deployment(path: Path, chain_id: int | None = None) -> Deployment:
    """Read ``deployment.json``; raise ``ConfigError`` naming the fix if missing or mismatched."""
    try:
        deployment = Deployment.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(
            f"no deployment at {path}", "start the devnet (`zg devnet up`) or run `zg chain deploy`"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"unreadable deployment file {path}: {exc}") from None
    if chain_id is not None and deployment.chain_id != chain_id:
        raise ConfigError(
            f"{path} is for chain {deployment.chain_id}, but the RPC is chain {chain_id}",
            "point --rpc-url at the right chain or redeploy with `zg chain deploy`",
        )
    return deployment


def code_hash(name: str) -> str:
    return "0x" + keccak256(bytes(HexBytes(load_artifact(name).bytecode))).hex()


def deploy_contract(chain: Chain, deployer: LocalAccount, name: str, args: list[Any]) -> str:
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = HexBytes(factory.constructor(*args).data_in_transaction)
    receipt = chain.transact(deployer, data=bytes(data))
    address = receipt.raw["contractAddress"]
    if address is None:
        raise ConfigError(f"deploying {name} returned no contract address")
    return str(address)


def deploy_all(
    chain: Chain, deployer: LocalAccount, path: Path, plan: list[ContractPlan] | None = None
) -> Deployment:
    """Deploy what ``plan`` lists and is missing or changed; save and return the deployment."""
    plan = PLAN if plan is None else plan
    try:
        previous: Deployment | None = load_deployment(path, chain.chain_id)
    except ConfigError:
        previous = None
    first_block = previous.deploy_block if previous is not None else chain.block_number()
    deployment = Deployment(chain_id=chain.chain_id, deploy_block=first_block)
    redeployed: set[str] = set()
    for item in plan:
        wanted = code_hash(item.name)
        kept = (
            previous is not None
            and previous.code_hashes.get(item.name) == wanted
            and not redeployed.intersection(item.depends)
            and len(chain.w3.eth.get_code(previous.addresses[item.name])) > 0
        )
        if kept and previous is not None:
            deployment.addresses[item.name] = previous.addresses[item.name]
        else:
            address = deploy_contract(chain, deployer, item.name, item.args(deployment.addresses))
            deployment.addresses[item.name] = address
            redeployed.add(item.name)
            if item.setup is not None:
                item.setup(chain, deployer, deployment.addresses)
        deployment.code_hashes[item.name] = wanted
    deployment.save(path)
    return deployment
