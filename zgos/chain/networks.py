"""Known networks. Anything else works too: pass ``--rpc-url`` and a deployment file."""

from __future__ import annotations

from dataclasses import dataclass

from zgos.runtime.ports import CHAIN_PORT

DEVNET_CHAIN_ID = 31337
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_ACCOUNTS = 20
DEVNET_BALANCE_0G = 1_000_000


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
