"""Deployment parameters of the DA contracts (devnet defaults); the ports are in ``zgos.runtime.ports``."""

from __future__ import annotations

EPOCH_BLOCKS = 10  # devnet: 10 s epochs at 1 s blocks
MIN_STAKE_WEI = 10**18  # 1 0G
SIGNER_STAKE_WEI = 10 * 10**18  # what `zg da signer` deposits by default
EXIT_DELAY_EPOCHS = 2
FEE_PER_ROW_WEI = 10**15  # 0.001 0G per 126,976-byte row
