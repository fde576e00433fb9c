"""Known networks and how to behave on each. Anything else works too: pass ``--rpc-url`` and a
deployment file (``zg network join``).

A ``Network`` profile is what the chain client needs beyond a URL: how many blocks a receipt
waits for before it is acted on (``confirmations``: a devnet never reorgs, a public chain
may, and more than one block deep), the smallest tip its validators take
(``min_priority_fee_wei``), how long a block takes (to pace receipt polling and give up), and
where the zgos deployment file for it comes from.
"""

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
GWEI = 10**9


@dataclass(frozen=True)
class Network:
    """A chain zgos knows how to run on (see the module docstring)."""

    name: str
    chain_id: int
    rpc_url: str
    confirmations: int = 0  # blocks on top of a receipt's block before it counts
    min_priority_fee_wei: int = 0  # the tip floor: validators ignore transactions below it
    block_time_s: float = 1.0
    explorer_url: str | None = None
    faucet_url: str | None = None
    # Where a zgos deployment for this chain is published (a file or URL ``zg network join
    # --deployment`` takes); None: whoever deploys it (``zg chain deploy``) shares the file.
    deployment_url: str | None = None


DEVNET = Network("devnet", DEVNET_CHAIN_ID, f"http://127.0.0.1:{CHAIN_PORT}")
# 0G's public testnet, Galileo (shared/reference/system.md §8.1: chain id 16602 in the current
# configs; its genesis sets a 1 gwei minimum gas price; blocks take ~0.4-2 s; the public RPC is
# for development and rate-limits). 0G does not deploy zgos's contracts: deploy them with
# `zg chain deploy --rpc-url https://evmrpc-testnet.0g.ai --account NAME` and share the file.
GALILEO = Network(
    "galileo", 16602, "https://evmrpc-testnet.0g.ai", confirmations=3, min_priority_fee_wei=GWEI,
    block_time_s=2.0, explorer_url="https://chainscan-galileo.0g.ai", faucet_url="https://faucet.0g.ai",
)

NETWORKS = {network.name: network for network in (DEVNET, GALILEO)}


def is_devnet(chain_id: int) -> bool:
    return chain_id == DEVNET_CHAIN_ID


def network_for_chain(chain_id: int) -> Network | None:
    """The known profile of chain ``chain_id``, or None (an unknown EVM chain)."""
    return next((network for network in NETWORKS.values() if network.chain_id == chain_id), None)
