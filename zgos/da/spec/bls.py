"""BLS12-381 signatures of DA signers, in the form the ``DAEntrance`` contract verifies.

Scheme (decided once for signers, disperser and contract): Ethereum's proof-of-possession
ciphersuite, "minimal-pubkey-size" — public keys in G1 (48 bytes compressed), signatures in G2
(96 bytes compressed), messages hashed to G2 with RFC 9380 (DST ``SIG_DST``), proofs of
possession signed under ``POP_DST``. Keys in G1 make the on-chain aggregation of the signers'
keys a cheap G1ADD per signer; the single aggregate signature is the only G2 point the chain
sees. blspy signs and verifies; py-arkworks-bls12381 converts points to the EIP-2537 encoding
(64-byte big-endian Fp words, G2 as x.c0 || x.c1 || y.c0 || y.c1).

The message a signer signs for a blob is ``signing_message`` (mirrors
``DAEntrance.signingMessage``): it binds the chain, the contract, the blob id, the epoch and
the quorum, so a signature cannot be replayed on another chain, contract, blob or epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import blspy
import py_arkworks_bls12381 as arkworks

from zgos.core.hashing import keccak256

SIG_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
SECRET_KEY_BYTES = 32
PUBKEY_BYTES = 48
SIGNATURE_BYTES = 96
FP_BYTES = 48
EIP2537_FP_BYTES = 64
EIP2537_G1_BYTES = 128
EIP2537_G2_BYTES = 256
KEY_DERIVATION_TAG = b"zgos.da.spec.bls-key.v1"
DOMAIN_TAG = keccak256(b"zgos.da.certificate.v1")
WORD_BYTES = 32


class InvalidBlsInput(ValueError):
    """A key or signature does not decode to a valid curve point."""


def derive_secret_key(seed: bytes) -> blspy.PrivateKey:
    """A BLS secret key derived from ``seed`` (e.g. the operator's account key) by EIP-2333
    KeyGen over ``keccak256(tag || seed)``: no second key file to lose."""
    return blspy.PopSchemeMPL.key_gen(keccak256(KEY_DERIVATION_TAG + seed))


def public_key(secret: blspy.PrivateKey) -> bytes:
    return bytes(secret.get_g1())


def sign(secret: blspy.PrivateKey, message: bytes) -> bytes:
    return bytes(blspy.PopSchemeMPL.sign(secret, message))


def prove_possession(secret: blspy.PrivateKey) -> bytes:
    return bytes(blspy.PopSchemeMPL.pop_prove(secret))


def verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``pubkey``'s signature of ``message``; False on bad encodings."""
    try:
        return bool(
            blspy.PopSchemeMPL.verify(
                blspy.G1Element.from_bytes(pubkey), message, blspy.G2Element.from_bytes(signature)
            )
        )
    except (ValueError, RuntimeError, TypeError):
        return False


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """Sum of G2 signatures (all over the same message)."""
    return bytes(blspy.PopSchemeMPL.aggregate([blspy.G2Element.from_bytes(s) for s in signatures]))


def _pad_fp(words: bytes) -> bytes:
    return b"".join(
        bytes(EIP2537_FP_BYTES - FP_BYTES) + words[i : i + FP_BYTES] for i in range(0, len(words), FP_BYTES)
    )


def g1_to_eip2537(pubkey: bytes) -> bytes:
    """A compressed G1 point as the 128-byte EIP-2537 encoding; checks it is on the curve."""
    try:
        return _pad_fp(bytes(arkworks.G1Point.from_compressed_bytes(pubkey).to_xy_bytes_be()))
    except (ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise InvalidBlsInput(f"not a BLS12-381 G1 point: {exc}") from None


def g2_to_eip2537(signature: bytes) -> bytes:
    """A compressed G2 point as the 256-byte EIP-2537 encoding (x.c0, x.c1, y.c0, y.c1)."""
    try:
        return _pad_fp(bytes(arkworks.G2Point.from_compressed_bytes(signature).to_xy_bytes_be()))
    except (ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise InvalidBlsInput(f"not a BLS12-381 G2 point: {exc}") from None


def signing_message(chain_id: int, entrance: str, blob_id: bytes, epoch: int, quorum_id: int) -> bytes:
    """``keccak256(abi.encode(DOMAIN_TAG, chainid, entrance, blobId, epoch, quorumId))``."""
    address = bytes.fromhex(entrance.removeprefix("0x"))
    return keccak256(
        DOMAIN_TAG
        + chain_id.to_bytes(WORD_BYTES, "big")
        + address.rjust(WORD_BYTES, b"\x00")
        + blob_id
        + epoch.to_bytes(WORD_BYTES, "big")
        + quorum_id.to_bytes(WORD_BYTES, "big")
    )
