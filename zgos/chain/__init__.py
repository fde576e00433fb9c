"""EVM access for every zgos process: anvil launcher, accounts, transactions, deployment.

The same code talks to the local anvil devnet, 0G's Galileo testnet or any EVM JSON-RPC URL.
The package imports nothing itself: a devnet's service table reads ``zgos.chain.networks``
without loading web3 (``zg devnet status`` starts at once).
"""
