"""Pure rules of this network: no I/O, mypy --strict, read like a specification."""
