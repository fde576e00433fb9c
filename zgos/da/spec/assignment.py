"""Which signer holds which cell column in an epoch (mirrors ``DASigners.assignColumns``).

Rule: the ``COLUMNS`` (128) columns are dealt in proportion to stake by the largest-remainder
method — signer i first gets ``floor(128 * stake_i / total)``, the columns left over go one each
to the signers with the largest remainders ``128 * stake_i mod total`` (ties to the lower
index) — then shuffled by Fisher-Yates with ``j = keccak256(abi.encode(seed, i)) mod (i + 1)``
for i = 127 down to 1; column ``perm[k]`` goes to the owner of dealt slot ``k``. The seed of an
epoch is ``keccak256(abi.encode(signers_contract, epoch))``. Members are the epoch's active
signers in registration order. Any 64 columns recover a blob, so a signer set holding >= 2/3 of
the stake also holds more than half of the columns (up to rounding of at most one column each).
"""

from __future__ import annotations

from collections.abc import Sequence

from zgos.core.hashing import keccak256

COLUMNS = 128
WORD_BYTES = 32


class InvalidStakes(ValueError):
    """Stakes are empty, negative or sum to zero."""


def compute_quotas(stakes: Sequence[int]) -> list[int]:
    """Columns per signer: largest remainder, ties to the lower index; sums to ``COLUMNS``."""
    if not stakes or any(s < 0 for s in stakes) or sum(stakes) == 0:
        raise InvalidStakes("column assignment needs at least one positive stake")
    total = sum(stakes)
    quotas = [COLUMNS * s // total for s in stakes]
    remainders = [COLUMNS * s % total for s in stakes]
    order = sorted(range(len(stakes)), key=lambda i: (-remainders[i], i))
    for i in order[: COLUMNS - sum(quotas)]:
        quotas[i] += 1
    return quotas


def compute_epoch_seed(signers_contract: str, epoch: int) -> bytes:
    address = bytes.fromhex(signers_contract.removeprefix("0x"))
    return keccak256(address.rjust(WORD_BYTES, b"\x00") + epoch.to_bytes(WORD_BYTES, "big"))


def compute_column_owners(stakes: Sequence[int], seed: bytes) -> list[int]:
    """For each column, the index of the signer holding it."""
    slots = [i for i, quota in enumerate(compute_quotas(stakes)) for _ in range(quota)]
    perm = list(range(COLUMNS))
    for i in range(COLUMNS - 1, 0, -1):
        j = int.from_bytes(keccak256(seed + i.to_bytes(WORD_BYTES, "big")), "big") % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    owners = [0] * COLUMNS
    for k in range(COLUMNS):
        owners[perm[k]] = slots[k]
    return owners


def columns_of(owners: Sequence[int], member: int) -> list[int]:
    """The columns held by ``member`` (ascending)."""
    return [column for column, owner in enumerate(owners) if owner == member]
