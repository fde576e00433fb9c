"""Data keys of agent NFTs and how they are sealed (issue 16; storage.md encryption format).

* Each data item of a token is a file encrypted with its own 32-byte AES-256-CTR key (format
  v1 of ``zgos.storage.spec.encryption``, with the key check in its submission tags); the
  token's data hash is the storage root of that ciphertext.
* A **sealed key** is the data key encrypted to a wallet's secp256k1 key in the storage
  encryption format v2 (ECIES): ``0x02 || ephemeral_pub[33] || nonce[16] || CTR(key)``,
  82 bytes. Sealing is deterministic given the ephemeral secret and nonce, so an oracle that
  is told them can check another oracle's sealed key byte for byte without the receiver's key.
* The oracle-to-oracle **hand-over** of a re-encryption seals ``key || ephemeral || nonce``
  (80 bytes) the same way to the endorsing oracle.
"""

from __future__ import annotations

from coincurve import PrivateKey

from zgos.storage.spec.encryption import (
    AES_KEY_SIZE,
    ECIES_HEADER_SIZE,
    NONCE_SIZE,
    PRIVATE_KEY_SIZE,
    EncryptionHeader,
    InvalidEncryption,
    compute_ecies_decrypt_key,
    crypt_at,
    new_ecies_header,
)

SEALED_KEY_BYTES = ECIES_HEADER_SIZE + AES_KEY_SIZE  # 82
HANDOVER_BYTES = AES_KEY_SIZE + PRIVATE_KEY_SIZE + NONCE_SIZE  # 80: key || ephemeral || nonce


def compute_raw_pubkey(secret: bytes) -> bytes:
    """The 64-byte public key (x || y) of a secp256k1 secret: the form the contracts take."""
    return bytes(PrivateKey(secret).public_key.format(compressed=False)[1:])


def seal(recipient_pubkey: bytes, secret: bytes, ephemeral_secret: bytes, nonce: bytes) -> bytes:
    """``secret`` encrypted to ``recipient_pubkey`` (64 or 65 bytes, or 33 compressed)."""
    header, aes_key = new_ecies_header(recipient_pubkey, ephemeral_secret, nonce)
    return header.encode() + crypt_at(aes_key, header.nonce, 0, secret)


def unseal(recipient_secret: bytes, sealed: bytes, size: int) -> bytes:
    """The ``size``-byte secret in ``sealed``; ``InvalidEncryption`` if it is not one. A wrong
    recipient key gives other bytes (the format has no MAC): callers check what they open."""
    if len(sealed) != ECIES_HEADER_SIZE + size:
        raise InvalidEncryption(f"a sealed secret here is {ECIES_HEADER_SIZE + size} bytes, got {len(sealed)}")
    header = EncryptionHeader.decode(sealed)
    aes_key = compute_ecies_decrypt_key(recipient_secret, header)
    return crypt_at(aes_key, header.nonce, 0, sealed[ECIES_HEADER_SIZE:])


def unseal_key(recipient_secret: bytes, sealed: bytes) -> bytes:
    return unseal(recipient_secret, sealed, AES_KEY_SIZE)


def encode_handover(key: bytes, ephemeral_secret: bytes, nonce: bytes) -> bytes:
    if (len(key), len(ephemeral_secret), len(nonce)) != (AES_KEY_SIZE, PRIVATE_KEY_SIZE, NONCE_SIZE):
        raise InvalidEncryption("a hand-over is a 32-byte key, a 32-byte ephemeral secret and a 16-byte nonce")
    return key + ephemeral_secret + nonce


def decode_handover(data: bytes) -> tuple[bytes, bytes, bytes]:
    if len(data) != HANDOVER_BYTES:
        raise InvalidEncryption(f"a hand-over is {HANDOVER_BYTES} bytes, got {len(data)}")
    return data[:AES_KEY_SIZE], data[AES_KEY_SIZE:AES_KEY_SIZE + PRIVATE_KEY_SIZE], data[-NONCE_SIZE:]
