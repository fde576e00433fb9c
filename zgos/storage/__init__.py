"""Storage network: log layer (flow, Merkle trees, nodes, client), mining, KV."""
