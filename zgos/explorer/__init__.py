"""The explorer: a web page over chain events and node APIs (network state, lineage)."""
