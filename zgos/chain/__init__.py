"""EVM access for every zgos process: anvil launcher, accounts, transactions, deployment.

The same code talks to the local anvil devnet, 0G's Galileo testnet or any EVM JSON-RPC URL.
"""

from zgos.chain.client import Chain, Receipt

__all__ = ["Chain", "Receipt"]
