"""Proof of random access (PoRA) mining: sealing, scratchpad, recall and answers.

Implements 0G's mining as its code does it (shared/reference/storage.md §3), not as the
whitepaper describes it (§3.6).
"""
