"""Sealed deliverables: the trained adapter encrypted under a fresh AES-256-GCM key, and that key
sealed to the user's secp256k1 public key with ECIES.

The provider encrypts the deliverable before uploading it to storage, so storage nodes and
anyone reading the chain see only ciphertext; the user can download and check it against the
result root before acknowledging. The AES key is sealed to the public key recovered from the
user's task signature and is published only at settlement (reference/compute.md §5.2 steps
7-11): only the holder of the user's private key can open it.

Deliverable format (all integers big-endian)::

    MAGIC(4) ‖ VERSION(1) ‖ chunk_bytes(4) ‖ iv(12) ‖ for each chunk i: AES-GCM(ct ‖ tag16)

Chunk ``i`` is encrypted with nonce ``iv + i`` (mod 2^96) and associated data
``header ‖ i(8) ‖ is_last(1)``, so chunks cannot be reordered, dropped or truncated without
failing authentication, with no extra signature over the tags (0G signs keccak of all tags
with the provider key for that; compute.md §5.2 step 8).

ECIES follows eciesjs / ecies-go / eciespy (secp256k1, uncompressed ephemeral key, HKDF-SHA256
over ``ephemeral_pub ‖ shared_point``, AES-256-GCM with a 16-byte nonce)::

    ephemeral_pub(65) ‖ nonce(16) ‖ tag(16) ‖ ciphertext

Randomness (keys, IVs, ephemeral secrets) is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zgos.core.errors import ZgError

MAGIC = b"ZGFT"
VERSION = 1
AES_KEY_BYTES = 32
GCM_IV_BYTES = 12
GCM_TAG_BYTES = 16
CHUNK_INDEX_BYTES = 8
CHUNK_SIZE_BYTES = 4
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
HEADER_BYTES = len(MAGIC) + 1 + CHUNK_SIZE_BYTES + GCM_IV_BYTES
IV_MODULUS = 1 << (8 * GCM_IV_BYTES)

SECRET_KEY_BYTES = 32
UNCOMPRESSED_PUBKEY_BYTES = 65
ECIES_NONCE_BYTES = 16
ECIES_OVERHEAD_BYTES = UNCOMPRESSED_PUBKEY_BYTES + ECIES_NONCE_BYTES + GCM_TAG_BYTES


class SealingError(ZgError):
    """A deliverable or sealed key does not open: wrong key, tampered, truncated or malformed."""


# --- deliverable encryption ----------------------------------------------------------------


def _header(chunk_bytes: int, iv: bytes) -> bytes:
    return MAGIC + bytes([VERSION]) + chunk_bytes.to_bytes(CHUNK_SIZE_BYTES, "big") + iv


def _chunk_nonce(iv: bytes, index: int) -> bytes:
    return ((int.from_bytes(iv, "big") + index) % IV_MODULUS).to_bytes(GCM_IV_BYTES, "big")


def _chunk_aad(header: bytes, index: int, is_last: bool) -> bytes:
    return header + index.to_bytes(CHUNK_INDEX_BYTES, "big") + bytes([is_last])


def _check_key(key: bytes) -> None:
    if len(key) != AES_KEY_BYTES:
        raise SealingError(f"an AES-256 key is {AES_KEY_BYTES} bytes, got {len(key)}")


def encrypt_deliverable(
    plaintext: bytes, key: bytes, iv: bytes, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> bytes:
    """Encrypt ``plaintext`` under ``key`` (fresh per deliverable) starting at nonce ``iv``."""
    _check_key(key)
    if len(iv) != GCM_IV_BYTES:
        raise SealingError(f"the IV is {GCM_IV_BYTES} bytes, got {len(iv)}")
    if not 0 < chunk_bytes < 1 << (8 * CHUNK_SIZE_BYTES):
        raise SealingError("chunk_bytes must be positive and fit in 4 bytes")
    header = _header(chunk_bytes, iv)
    aead = AESGCM(key)
    chunks = [plaintext[i : i + chunk_bytes] for i in range(0, len(plaintext), chunk_bytes)]
    chunks = chunks or [b""]
    out = [header]
    for index, chunk in enumerate(chunks):
        aad = _chunk_aad(header, index, index == len(chunks) - 1)
        out.append(aead.encrypt(_chunk_nonce(iv, index), chunk, aad))
    return b"".join(out)


def _sealed_chunks(blob: bytes, chunk_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    body = memoryview(blob)[HEADER_BYTES:]
    step = chunk_bytes + GCM_TAG_BYTES
    count = max(1, -(-len(body) // step))
    for index in range(count):
        yield index, bytes(body[index * step : (index + 1) * step]), index == count - 1


def decrypt_deliverable(blob: bytes, key: bytes) -> bytes:
    """Decrypt a deliverable; raise :class:`SealingError` on a wrong key or any tampering."""
    _check_key(key)
    if len(blob) < HEADER_BYTES + GCM_TAG_BYTES or blob[: len(MAGIC)] != MAGIC:
        raise SealingError("not a zgos fine-tuning deliverable")
    if blob[len(MAGIC)] != VERSION:
        raise SealingError(f"unsupported deliverable version {blob[len(MAGIC)]}")
    header = blob[:HEADER_BYTES]
    chunk_bytes = int.from_bytes(header[len(MAGIC) + 1 : len(MAGIC) + 1 + CHUNK_SIZE_BYTES], "big")
    if chunk_bytes == 0:
        raise SealingError("the deliverable header is corrupt")
    iv = header[-GCM_IV_BYTES:]
    aead = AESGCM(key)
    parts = []
    for index, sealed, is_last in _sealed_chunks(blob, chunk_bytes):
        try:
            parts.append(
                aead.decrypt(_chunk_nonce(iv, index), sealed, _chunk_aad(header, index, is_last))
            )
        except InvalidTag:
            raise SealingError(
                f"chunk {index} does not authenticate (wrong key, tampered or truncated)"
            ) from None
    return b"".join(parts)


# --- ECIES key sealing ---------------------------------------------------------------------


def _derive_key(ephemeral_pub: bytes, shared_point: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=AES_KEY_BYTES, salt=None, info=None)
    return hkdf.derive(ephemeral_pub + shared_point)


def _public_key(public_key: bytes) -> coincurve.PublicKey:
    try:
        return coincurve.PublicKey(public_key)
    except ValueError:
        raise SealingError("not a valid secp256k1 public key") from None


def seal_key(
    secret: bytes, recipient_public_key: bytes, ephemeral_secret: bytes, nonce: bytes
) -> bytes:
    """ECIES-encrypt ``secret`` to ``recipient_public_key`` (33 or 65 bytes)."""
    if len(ephemeral_secret) != SECRET_KEY_BYTES or len(nonce) != ECIES_NONCE_BYTES:
        raise SealingError("the ephemeral secret is 32 bytes and the nonce 16 bytes")
    recipient = _public_key(recipient_public_key)
    ephemeral = coincurve.PrivateKey(ephemeral_secret)
    ephemeral_pub = ephemeral.public_key.format(compressed=False)
    shared = recipient.multiply(ephemeral_secret).format(compressed=False)
    sealed = AESGCM(_derive_key(ephemeral_pub, shared)).encrypt(nonce, secret, None)
    ciphertext, tag = sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:]
    return ephemeral_pub + nonce + tag + ciphertext


def open_sealed_key(sealed: bytes, private_key: bytes) -> bytes:
    """Open a sealed key with the recipient's private key; :class:`SealingError` otherwise."""
    if len(sealed) < ECIES_OVERHEAD_BYTES:
        raise SealingError("the sealed key is too short")
    ephemeral_pub = sealed[:UNCOMPRESSED_PUBKEY_BYTES]
    nonce = sealed[UNCOMPRESSED_PUBKEY_BYTES : UNCOMPRESSED_PUBKEY_BYTES + ECIES_NONCE_BYTES]
    tag = sealed[UNCOMPRESSED_PUBKEY_BYTES + ECIES_NONCE_BYTES : ECIES_OVERHEAD_BYTES]
    ciphertext = sealed[ECIES_OVERHEAD_BYTES:]
    try:
        shared = _public_key(ephemeral_pub).multiply(private_key).format(compressed=False)
    except ValueError:
        raise SealingError("not a valid secp256k1 private key") from None
    try:
        return AESGCM(_derive_key(ephemeral_pub, shared)).decrypt(nonce, ciphertext + tag, None)
    except InvalidTag:
        raise SealingError("the sealed key does not open with this private key") from None
