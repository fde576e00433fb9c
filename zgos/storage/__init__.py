"""zgos storage: the 0G-compatible log layer (core, contracts, node, client), mining, KV."""
