"""One-command local network: chain, contracts and every service as its own OS process."""
