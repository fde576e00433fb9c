"""The pure rules of ERC-7857 agent NFTs in zgos: proofs, digests and sealed keys (no I/O)."""
