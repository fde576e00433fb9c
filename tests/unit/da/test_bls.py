"""BLS helpers: sign/verify/aggregate (PoP ciphersuite) and the EIP-2537 encodings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.bls import G2ProofOfPossession as oracle
from py_ecc.bls.g2_primitives import pubkey_to_G1, signature_to_G2
from py_ecc.optimized_bls12_381 import normalize

from zgos.da.spec import bls


@settings(max_examples=5, deadline=None)
@given(st.binary(min_size=1, max_size=32), st.binary(min_size=32, max_size=32))
def test_signatures_agree_with_the_py_ecc_oracle(seed: bytes, message: bytes) -> None:
    secret = bls.derive_secret_key(seed)
    signature = bls.sign(secret, message)
    pubkey = bls.public_key(secret)
    assert oracle.Verify(pubkey, message, signature)
    assert bls.verify(pubkey, message, signature)
    assert oracle.PopVerify(pubkey, bls.prove_possession(secret))


def test_aggregate_verifies_under_the_sum_of_keys_and_bad_signatures_fail() -> None:
    secrets = [bls.derive_secret_key(bytes([i])) for i in range(3)]
    message = b"m" * 32
    aggregate = bls.aggregate([bls.sign(s, message) for s in secrets])
    assert oracle.FastAggregateVerify([bls.public_key(s) for s in secrets], message, aggregate)
    assert not bls.verify(bls.public_key(secrets[0]), message, aggregate)
    assert not bls.verify(b"\x00" * 48, message, aggregate)
    assert not bls.verify(bls.public_key(secrets[0]), message, b"junk")


@settings(max_examples=5, deadline=None)
@given(st.binary(min_size=1, max_size=16))
def test_eip2537_encodings_hold_the_affine_coordinates(seed: bytes) -> None:
    secret = bls.derive_secret_key(seed)
    pubkey, signature = bls.public_key(secret), bls.sign(secret, b"x")
    x, y = normalize(pubkey_to_G1(pubkey))
    assert bls.g1_to_eip2537(pubkey) == x.n.to_bytes(64, "big") + y.n.to_bytes(64, "big")
    sx, sy = normalize(signature_to_G2(signature))
    coords = (sx.coeffs[0], sx.coeffs[1], sy.coeffs[0], sy.coeffs[1])
    assert bls.g2_to_eip2537(signature) == b"".join(int(c).to_bytes(64, "big") for c in coords)


def test_invalid_points_are_refused() -> None:
    with pytest.raises(bls.InvalidBlsInput):
        bls.g1_to_eip2537(b"\x01" * 48)
    with pytest.raises(bls.InvalidBlsInput):
        bls.g2_to_eip2537(b"\x01" * 96)


@given(st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_signing_message_binds_every_field(epoch: int, blob_id: bytes) -> None:
    base = bls.signing_message(31337, "0x" + "22" * 20, blob_id, epoch, 0)
    assert len(base) == 32
    assert base != bls.signing_message(1, "0x" + "22" * 20, blob_id, epoch, 0)
    assert base != bls.signing_message(31337, "0x" + "23" * 20, blob_id, epoch, 0)
    assert base != bls.signing_message(31337, "0x" + "22" * 20, blob_id, epoch + 1, 0)
    assert base != bls.signing_message(31337, "0x" + "22" * 20, blob_id, epoch, 1)
