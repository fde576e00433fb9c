"""secp256k1 signatures over 32-byte digests, as Ethereum checks them (``ecrecover`` and
OpenZeppelin's ``ECDSA``): 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low ``s``
(EIP-2). Every EIP-712 message of zgos (payments, fine-tuning tasks, INFT proofs) is signed and
recovered here.
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from zgos.core.hashing import HASH_BYTES, keccak256

SIGNATURE_BYTES = 65
ADDRESS_BYTES = 20
EIP712_PREFIX = b"\x19\x01"
# secp256k1 group order and half of it (EIP-2: signatures with s > N/2 are malleable copies).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


class InvalidMessage(ValueError):
    """A field that does not fit its type (an address, a 32-byte hash, a uint256)."""


class InvalidSignature(ValueError):
    """A signature that is malformed, malleable or recovers to no key."""


def _hash32(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise InvalidMessage(f"{name} must be {HASH_BYTES} bytes")
    return value


def normalize_address(address: str) -> str:
    """Return ``address`` as lower-case ``0x`` + 40 hex; raise ``InvalidMessage`` otherwise."""
    text = address.lower()
    if not text.startswith("0x") or len(text) != 2 + 2 * ADDRESS_BYTES:
        raise InvalidMessage(f"not an address: {address!r}")
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidMessage(f"not an address: {address!r}") from None
    return text


def address_of_public_key(public_key: PublicKey) -> str:
    """Ethereum address: the last 20 bytes of keccak256 of the uncompressed key (no prefix)."""
    return "0x" + keccak256(public_key.format(compressed=False)[1:])[-ADDRESS_BYTES:].hex()


def address_of_private_key(private_key: bytes) -> str:
    return address_of_public_key(PrivateKey(private_key).public_key)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; return ``r ‖ s ‖ v`` with ``v ∈ {27, 28}`` and low s."""
    raw = PrivateKey(private_key).sign_recoverable(_hash32(digest, "digest"), hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def recover_digest(digest: bytes, signature: bytes) -> str:
    """The address that signed ``digest``; raise ``InvalidSignature`` if malformed or high-s."""
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidSignature(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > SECP256K1_HALF_N:
        raise InvalidSignature("signature s is zero or not in the lower half order (malleable)")
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), _hash32(digest, "digest"), hasher=None
        )
    except Exception:
        raise InvalidSignature("signature does not recover to any key") from None
    return address_of_public_key(public_key)
