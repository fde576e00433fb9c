"""Sealing: data at rest is XOR-ed with a keccak chain bound to a miner and an epoch context.

A seal is 4 KiB (16 sectors, 128 words of 32 bytes). Word ``w`` is XOR-ed with a mask that is
the keccak of the *sealed* word ``w - 1`` (the first word's mask is
``keccak(miner_id || context_digest || u256(start_sector))``), so sealing is sequential but
unsealing any word needs only the previous sealed word (storage.md §3.2).
"""

from __future__ import annotations

from zgos.core.hashing import HASH_BYTES, keccak256

BYTES_PER_SECTOR = 256
SECTORS_PER_SEAL = 16
BYTES_PER_SEAL = BYTES_PER_SECTOR * SECTORS_PER_SEAL  # 4 KiB
BYTES_PER_WORD = 32
WORDS_PER_SEAL = BYTES_PER_SEAL // BYTES_PER_WORD  # 128
MINER_ID_BYTES = 32


class InvalidSealInput(ValueError):
    """A seal input has the wrong size or an identifier of the wrong length."""


def xor_bytes(left: bytes, right: bytes) -> bytes:
    """Byte-wise XOR of two equal-length strings."""
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def _check(data: bytes, miner_id: bytes, context_digest: bytes, start_sector: int) -> None:
    if len(data) != BYTES_PER_SEAL:
        raise InvalidSealInput(f"a seal is {BYTES_PER_SEAL} bytes, got {len(data)}")
    if len(miner_id) != MINER_ID_BYTES or len(context_digest) != HASH_BYTES:
        raise InvalidSealInput("miner id and context digest are 32 bytes each")
    if start_sector < 0 or start_sector % SECTORS_PER_SEAL:
        raise InvalidSealInput(f"start sector {start_sector} is not a multiple of {SECTORS_PER_SEAL}")


def compute_seal_seed(miner_id: bytes, context_digest: bytes, start_sector: int) -> bytes:
    """The first word's mask: ``keccak(miner_id || context_digest || u256(start_sector))``."""
    return keccak256(miner_id + context_digest + start_sector.to_bytes(32, "big"))


def seal(data: bytes, miner_id: bytes, context_digest: bytes, start_sector: int) -> bytes:
    """Seal one 4 KiB piece starting at flow sector ``start_sector`` (a multiple of 16)."""
    _check(data, miner_id, context_digest, start_sector)
    return seal_with_seed(data, compute_seal_seed(miner_id, context_digest, start_sector))


def seal_with_seed(data: bytes, seed: bytes) -> bytes:
    """Seal one 4 KiB piece whose first mask is ``seed`` (``compute_seal_seed``)."""
    if len(data) != BYTES_PER_SEAL or len(seed) != HASH_BYTES:
        raise InvalidSealInput(f"a seal is {BYTES_PER_SEAL} bytes and its seed {HASH_BYTES}")
    mask = seed
    words = []
    for w in range(WORDS_PER_SEAL):
        sealed_word = xor_bytes(data[w * BYTES_PER_WORD : (w + 1) * BYTES_PER_WORD], mask)
        words.append(sealed_word)
        mask = keccak256(sealed_word)
    return b"".join(words)


def unseal_word(sealed: bytes, index: int, miner_id: bytes, context_digest: bytes, start_sector: int) -> bytes:
    """Recover word ``index`` of a sealed piece from that word and the sealed word before it."""
    if not 0 <= index < WORDS_PER_SEAL:
        raise InvalidSealInput(f"word index {index} outside 0..{WORDS_PER_SEAL - 1}")
    if index == 0:
        mask = compute_seal_seed(miner_id, context_digest, start_sector)
    else:
        mask = keccak256(sealed[(index - 1) * BYTES_PER_WORD : index * BYTES_PER_WORD])
    return xor_bytes(sealed[index * BYTES_PER_WORD : (index + 1) * BYTES_PER_WORD], mask)


def unseal(sealed: bytes, miner_id: bytes, context_digest: bytes, start_sector: int) -> bytes:
    """Invert ``seal``: ``unseal(seal(d, ...), ...) == d``."""
    _check(sealed, miner_id, context_digest, start_sector)
    return b"".join(
        unseal_word(sealed, w, miner_id, context_digest, start_sector) for w in range(WORDS_PER_SEAL)
    )
