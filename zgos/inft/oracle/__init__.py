"""The INFT re-encryption oracle (``zg inft oracle``): a trusted signer, not a TEE."""
