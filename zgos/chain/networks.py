"""Known networks. Anything else works too: pass ``--rpc-url`` and a deployment file."""

from __future__ import annotations

from dataclasses import dataclass

from zgos.runtime.ports import CHAIN_PORT

DEVNET_CHAIN_ID = 31337
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_ACCOUNTS = 24
DEVNET_BALANCE_0G = 1_000_000
# Which devnet mnemonic account each role uses (anvil funds the first DEVNET_ACCOUNTS).
DEVNET_ROLES = {
    "deployer": 0,  # also the devnet faucet
    "user": 1,  # the demo user that CLI commands default to on the devnet
    "storage": 2,  # storage-i uses 2 + i (up to 8 nodes)
    "da-signer": 10,  # da-signer-i uses 10 + i (up to 4 signers)
    "da-disperser": 14,
    "provider": 15,
    "finetune-provider": 16,
    "auditor": 17,
    "kv": 18,
    "inft-oracle": 20,  # inft-oracle-i uses 20 + i (3 oracles)
}


@dataclass(frozen=True)
class Network:
    name: str
    chain_id: int
    rpc_url: str


DEVNET = Network("devnet", DEVNET_CHAIN_ID, f"http://127.0.0.1:{CHAIN_PORT}")
# 0G's public testnet (chain id per shared/reference/system.md §chain ids).
GALILEO = Network("galileo", 16602, "https://evmrpc-testnet.0g.ai")

NETWORKS = {network.name: network for network in (DEVNET, GALILEO)}


def is_devnet(chain_id: int) -> bool:
    return chain_id == DEVNET_CHAIN_ID
