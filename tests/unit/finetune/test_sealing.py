"""Deliverable encryption and key sealing: only the user's key opens the deliverable."""

from __future__ import annotations

import coincurve
import ecies
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec.sealing import (
    HEADER_BYTES,
    SealingError,
    decrypt_deliverable,
    encrypt_deliverable,
    open_sealed_key,
    seal_key,
)

secrets32 = st.binary(min_size=32, max_size=32).filter(
    lambda b: 0 < int.from_bytes(b, "big") < coincurve.utils.GROUP_ORDER_INT
)
ivs = st.binary(min_size=12, max_size=12)
nonces = st.binary(min_size=16, max_size=16)
KEY = b"\x07" * 32
IV = b"\xff" * 12  # wraps around while incrementing


@given(st.binary(max_size=300), secrets32, ivs, st.integers(1, 64))
def test_deliverable_round_trips_for_any_size_and_chunking(
    data: bytes, key: bytes, iv: bytes, chunk_bytes: int
) -> None:
    blob = encrypt_deliverable(data, key, iv, chunk_bytes)
    assert decrypt_deliverable(blob, key) == data


def test_someone_else_cannot_decrypt_the_deliverable() -> None:
    blob = encrypt_deliverable(b"adapter weights", KEY, IV)
    with pytest.raises(SealingError, match="does not authenticate"):
        decrypt_deliverable(blob, b"\x08" * 32)


@given(st.data())
def test_tampered_reordered_or_truncated_deliverables_are_rejected(data: st.DataObject) -> None:
    plaintext = bytes(range(100))
    blob = encrypt_deliverable(plaintext, KEY, IV, chunk_bytes=16)
    chunk = 16 + 16
    body = blob[HEADER_BYTES:]
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    attack = data.draw(st.sampled_from(["flip", "truncate", "swap", "drop_last"]))
    if attack == "flip":
        position = data.draw(st.integers(0, len(blob) - 1))
        bad = bytearray(blob)
        bad[position] ^= 1 << data.draw(st.integers(0, 7))
        bad_blob = bytes(bad)
    elif attack == "truncate":
        bad_blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif attack == "swap":
        bad_blob = blob[:HEADER_BYTES] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    else:
        bad_blob = blob[:HEADER_BYTES] + b"".join(chunks[:-1])
    with pytest.raises(SealingError):
        decrypt_deliverable(bad_blob, KEY)


@given(st.binary(min_size=1, max_size=64), secrets32, secrets32, nonces, st.booleans())
def test_sealed_key_opens_only_with_the_users_private_key(
    secret: bytes, user_key: bytes, ephemeral: bytes, nonce: bytes, compressed: bool
) -> None:
    public_key = coincurve.PrivateKey(user_key).public_key.format(compressed=compressed)
    sealed = seal_key(secret, public_key, ephemeral, nonce)
    assert open_sealed_key(sealed, user_key) == secret
    other = bytes([user_key[0] ^ 1]) + user_key[1:]
    with pytest.raises(SealingError):
        open_sealed_key(sealed, other)


def test_sealed_key_interoperates_with_eciespy() -> None:
    """The format is eciesjs / ecies-go / eciespy's, so any of their wallets can open it."""
    user = coincurve.PrivateKey(b"\x33" * 32)
    public_key = user.public_key.format(compressed=False)
    ours = seal_key(KEY, public_key, b"\x44" * 32, b"\x55" * 16)
    assert ecies.decrypt(user.secret, ours) == KEY
    theirs = ecies.encrypt(public_key, KEY)
    assert open_sealed_key(theirs, user.secret) == KEY


def test_malformed_keys_are_rejected() -> None:
    with pytest.raises(SealingError, match="AES-256 key"):
        encrypt_deliverable(b"x", b"short", IV)
    with pytest.raises(SealingError, match="not a zgos"):
        decrypt_deliverable(b"garbage" * 10, KEY)
    with pytest.raises(SealingError, match="public key"):
        seal_key(KEY, b"\x04" + b"\x00" * 64, b"\x44" * 32, b"\x55" * 16)
    with pytest.raises(SealingError, match="too short"):
        open_sealed_key(b"\x04" * 40, b"\x33" * 32)
