"""zgos storage: the 0G-compatible log layer (core, contracts access, node, client)."""
