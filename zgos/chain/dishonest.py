"""Test-only dishonest modes of services (issue 17 §6): how the audits are shown to catch a
cheat. A mode is off by default, needs ``ZGOS_TEST_DISHONEST=1`` and is refused on any chain
but the devnet, so a misconfigured production service cannot cheat by accident."""

from __future__ import annotations

import os

from zgos.chain.networks import is_devnet
from zgos.core.errors import ConfigError

DISHONEST_ENV = "ZGOS_TEST_DISHONEST"


def check_dishonest_mode(mode: str | None, modes: tuple[str, ...], chain_id: int) -> str | None:
    """``mode`` if a test may run it here; ``ConfigError`` otherwise (None: honest)."""
    if mode is None:
        return None
    if mode not in modes:
        raise ConfigError(f"unknown dishonest mode {mode!r}", f"one of: {', '.join(modes)}")
    if not os.environ.get(DISHONEST_ENV):
        raise ConfigError("--dishonest exists only for tests", f"set {DISHONEST_ENV}=1")
    if not is_devnet(chain_id):
        raise ConfigError(f"--dishonest is refused on chain {chain_id}: dishonest modes run on the devnet only")
    return mode
