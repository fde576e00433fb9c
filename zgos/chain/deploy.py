"""Deploy the zgos contract set in dependency order and record it in ``deployment.json``.

Deployment is idempotent: a contract already deployed from the same bytecode (and whose
dependencies were not redeployed) is kept; anything new or changed is deployed.
The engine knows no network: each keeps its part of the plan (``DEPLOY_PLAN``, with the
constructor arguments) beside its contract wrappers, and ``zgos.devnet.plan.PLAN`` puts them
in deployment order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from hexbytes import HexBytes

from zgos.chain.artifacts import load_artifact
from zgos.chain.client import Chain
from zgos.core.errors import ConfigError
from zgos.core.hashing import keccak256

Addresses = dict[str, str]


@dataclass(frozen=True)
class ContractPlan:
    """How to deploy one contract: constructor arguments from already-deployed addresses,
    and an optional setup step run once right after deployment."""

    name: str
    depends: tuple[str, ...] = ()
    args: Callable[[Addresses], list[Any]] = lambda _: []
    setup: Callable[[Chain, LocalAccount, Addresses], None] | None = None


def wire(contract: str, method: str, target: str) -> Callable[[Chain, LocalAccount, Addresses], None]:
    """Setup step: tell ``contract`` the address of ``target`` (``contract.method(target)``)."""

    def setup(chain: Chain, deployer: LocalAccount, addrs: Addresses) -> None:
        handle = chain.contract(contract, addrs[contract])
        chain.transact(deployer, getattr(handle.functions, method)(addrs[target]))

    return setup


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
        """The deployment in ``data``; ``ValueError`` naming a contract whose address is not one."""
        contracts = data["contracts"]
        for name, entry in contracts.items():
            if not is_address(entry["address"]):
                raise ValueError(f"{name}'s address {entry['address']!r} is not an address")
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


MAX_DEPLOYMENT_BYTES = 1 << 20  # a deployment file names a few dozen contracts: kilobytes
DEPLOYMENT_FETCH_TIMEOUT_S = 30.0


def read_deployment_source(source: str, chain_id: int | None = None) -> Deployment:
    """The deployment in ``source``: an ``http(s)://`` URL (fetched, at most
    ``MAX_DEPLOYMENT_BYTES``) or a file path; ``ConfigError`` when it cannot be read, is not a
    deployment, or is for another chain than ``chain_id``."""
    if not source.startswith(("http://", "https://")):
        return load_deployment(Path(source).expanduser(), chain_id)
    import httpx

    try:
        with httpx.stream("GET", source, timeout=DEPLOYMENT_FETCH_TIMEOUT_S, follow_redirects=True) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DEPLOYMENT_BYTES:
                    raise ConfigError(f"the deployment at {source} is larger than {MAX_DEPLOYMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot fetch the deployment at {source}: {exc}") from None
    try:
        deployment = Deployment.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source} is not a deployment file: {exc}") from None
    if chain_id is not None and deployment.chain_id != chain_id:
        raise ConfigError(f"{source} is for chain {deployment.chain_id}, but the RPC is chain {chain_id}",
                          "check --rpc-url and --deployment")
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


def deploy_all(chain: Chain, deployer: LocalAccount, path: Path, plan: list[ContractPlan],
               on_item: Callable[[str], None] | None = None) -> Deployment:
    """Deploy what ``plan`` lists and is missing or changed; save and return the deployment.
    ``plan`` is in deployment order (``zgos.devnet.plan.PLAN``: the whole zgos set);
    ``on_item`` is told each contract's name once it is deployed (or kept) and set up."""
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
            and len(chain.w3.eth.get_code(to_checksum_address(previous.addresses[item.name]))) > 0
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
        if on_item is not None:
            on_item(item.name)
    deployment.save(path)
    return deployment
