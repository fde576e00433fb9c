"""Compute network: paid, signed, verifiable inference (ledger, registry, broker, user proxy)."""
