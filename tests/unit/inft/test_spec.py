"""The pure INFT rules: sealed keys open only for their recipient, hand-overs round-trip, and
oracle signatures are put in the one order the verifier accepts."""

from __future__ import annotations

import os

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.inft.spec.keys import SEALED_KEY_BYTES, decode_handover, encode_handover, seal, unseal_key
from zgos.inft.spec.proofs import (
    InvalidProof,
    ProofDomain,
    Reencryption,
    compute_pubkey_address,
    order_signatures,
    recover_ownership_signer,
    sign_ownership,
)
from zgos.storage.spec.encryption import InvalidEncryption

secrets_ = st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < 2**255)
DOMAIN = ProofDomain(31337, "0x" + "11" * 20, "0x" + "22" * 20)


def pub(secret: bytes) -> bytes:
    return PrivateKey(secret).public_key.format(compressed=False)[1:]


@settings(max_examples=30)
@given(recipient=secrets_, other=secrets_, key=st.binary(min_size=32, max_size=32), ephemeral=secrets_,
       nonce=st.binary(min_size=16, max_size=16))
def test_a_sealed_key_opens_for_its_recipient_only(recipient: bytes, other: bytes, key: bytes, ephemeral: bytes,
                                                   nonce: bytes) -> None:
    sealed = seal(pub(recipient), key, ephemeral, nonce)
    assert len(sealed) == SEALED_KEY_BYTES
    assert unseal_key(recipient, sealed) == key
    assert seal(pub(recipient), key, ephemeral, nonce) == sealed, "deterministic: another oracle can check it"
    if other != recipient:
        assert unseal_key(other, sealed) != key


def test_a_hand_over_round_trips_and_refuses_other_sizes() -> None:
    parts = (os.urandom(32), os.urandom(32), os.urandom(16))
    assert decode_handover(encode_handover(*parts)) == parts
    with pytest.raises(InvalidEncryption):
        decode_handover(b"x" * 79)
    with pytest.raises(InvalidEncryption):
        unseal_key(os.urandom(32), b"\x02" * 81)


@settings(max_examples=10)
@given(signers=st.lists(secrets_, min_size=1, max_size=5, unique=True))
def test_signatures_are_ordered_by_signer_with_no_signer_twice(signers: list[bytes]) -> None:
    r = Reencryption(os.urandom(32), os.urandom(32), os.urandom(82), os.urandom(64), os.urandom(32))
    signatures = [sign_ownership(DOMAIN, r, s) for s in signers]
    ordered = order_signatures(DOMAIN, r, signatures + signatures[:1])
    recovered = [int(recover_ownership_signer(DOMAIN, r, s), 16) for s in ordered]
    assert recovered == sorted(set(recovered)) and len(recovered) == len(signers)
    assert {compute_pubkey_address(pub(s)) for s in signers} == {f"0x{a:040x}" for a in recovered}


def test_a_reencryption_with_bad_sizes_is_refused() -> None:
    with pytest.raises(InvalidProof):
        Reencryption(os.urandom(32), os.urandom(32), b"k", os.urandom(65), b"n")
    with pytest.raises(InvalidProof):
        Reencryption(os.urandom(32), os.urandom(32), b"k", os.urandom(64), b"")
