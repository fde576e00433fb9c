"""0G's encryption format (zgos.storage.spec.encryption): headers, CTR at any offset, ECIES, key check."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.storage.spec.encryption import (
    ECIES_HEADER_SIZE,
    ECIES_VERSION,
    SECP256K1_ORDER,
    SYMMETRIC_HEADER_SIZE,
    EncryptionHeader,
    InvalidEncryption,
    WrongKey,
    compute_counter_block,
    compute_ecies_decrypt_key,
    compute_pubkey,
    crypt_at,
    decode_key_check_tags,
    decrypt_bytes,
    encode_key_check_tags,
    encrypt_bytes,
    new_ecies_header,
    new_symmetric_header,
    normalize_pubkey,
    validate_key_check,
)

keys = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=16, max_size=16)
secrets_ = st.integers(1, SECP256K1_ORDER - 1).map(lambda n: n.to_bytes(32, "big"))
payloads = st.binary(max_size=2000)


@given(keys, nonces, payloads, st.data())
def test_decrypting_from_any_offset_equals_a_full_decrypt(key: bytes, nonce: bytes, data: bytes,
                                                          draw: st.DataObject) -> None:
    whole = crypt_at(key, nonce, 0, data)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=5)))
    bounds = [0, *cuts, len(data)]
    pieces = b"".join(crypt_at(key, nonce, a, whole[a:b]) for a, b in itertools.pairwise(bounds))
    assert pieces == data


@given(keys, st.integers(0, 2**20), payloads)
def test_the_counter_wraps_at_2_to_the_128_like_0g(key: bytes, offset: int, data: bytes) -> None:
    nonce = b"\xff" * 16
    assert compute_counter_block(nonce, 16) == bytes(16)
    whole = crypt_at(key, nonce, offset, data)
    assert b"".join(crypt_at(key, nonce, offset + i, whole[i:i + 7]) for i in range(0, len(data), 7)) == data


@given(keys, nonces, payloads)
def test_v1_encrypt_then_decrypt_round_trips(key: bytes, nonce: bytes, data: bytes) -> None:
    blob = encrypt_bytes(key, new_symmetric_header(nonce), data)
    assert blob[:1] == b"\x01" and blob[1:17] == nonce and len(blob) == SYMMETRIC_HEADER_SIZE + len(data)
    assert decrypt_bytes(key, blob) == data


@settings(max_examples=40)
@given(secrets_, secrets_, nonces, payloads)
def test_v2_round_trips_with_random_recipient_and_ephemeral_keys(recipient: bytes, ephemeral: bytes, nonce: bytes,
                                                                 data: bytes) -> None:
    header, key = new_ecies_header(compute_pubkey(recipient), ephemeral, nonce)
    blob = encrypt_bytes(key, header, data)
    parsed = EncryptionHeader.decode(blob)
    assert parsed == header and parsed.size == ECIES_HEADER_SIZE and parsed.version == ECIES_VERSION
    assert decrypt_bytes(compute_ecies_decrypt_key(recipient, parsed), blob) == data


@settings(max_examples=20)
@given(secrets_, secrets_, secrets_, nonces)
def test_v2_with_another_recipient_derives_another_key(recipient: bytes, other: bytes, ephemeral: bytes,
                                                       nonce: bytes) -> None:
    """Only the recipient's secret d, or n - d, derives the key: the ECDH shared secret is the x
    coordinate of d * E, which -d * E shares (and either secret gives the other: no weakness)."""
    header, key = new_ecies_header(compute_pubkey(recipient), ephemeral, nonce)
    negated = (SECP256K1_ORDER - int.from_bytes(recipient, "big")).to_bytes(32, "big")
    assert (compute_ecies_decrypt_key(other, header) == key) == (other in (recipient, negated))


def test_the_negated_secret_derives_the_same_key() -> None:
    """The case hypothesis found: recipient 1 and other n - 1."""
    recipient, negated = (1).to_bytes(32, "big"), (SECP256K1_ORDER - 1).to_bytes(32, "big")
    header, key = new_ecies_header(compute_pubkey(recipient), (1).to_bytes(32, "big"), bytes(16))
    assert compute_ecies_decrypt_key(negated, header) == key


def test_the_v2_key_is_hkdf_of_the_raw_ecdh_x_coordinate() -> None:
    """The rule spelled out with independent arithmetic: x of (e * R), then HKDF-SHA256 by hand."""
    recipient, ephemeral = (7).to_bytes(32, "big"), (11).to_bytes(32, "big")
    _, key = new_ecies_header(compute_pubkey(recipient), ephemeral, bytes(16))
    point = ec.derive_private_key(77, ec.SECP256K1()).public_key()  # 7 * 11 * G
    shared_x = point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:33]

    prk = hmac.new(bytes(32), shared_x, hashlib.sha256).digest()  # extract with an empty salt
    okm = hmac.new(prk, b"0g-storage-client/ecies/v1/aes-256" + b"\x01", hashlib.sha256).digest()
    assert key == okm


@settings(max_examples=20)
@given(secrets_)
def test_pubkeys_normalize_from_33_65_64_bytes_and_hex(secret: bytes) -> None:
    point = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256K1()).public_key()
    compressed = point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    uncompressed = point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    for form in (compressed, uncompressed, uncompressed[1:], "0x" + uncompressed.hex(), compressed.hex()):
        assert normalize_pubkey(form) == compressed


@pytest.mark.parametrize("bad, message", [
    (b"", "no bytes"),
    (b"\x01" + bytes(15), "too short for a v1"),
    (b"\x02" + bytes(40), "too short for a v2"),
    (b"\x00" + bytes(60), "unknown encryption version"),
    (b"\x7f" + bytes(60), "unknown encryption version"),
])
def test_short_or_unknown_headers_are_clear_errors(bad: bytes, message: str) -> None:
    with pytest.raises(InvalidEncryption, match=message):
        EncryptionHeader.decode(bad)


@pytest.mark.parametrize("bad", [b"\x02" + bytes(32), bytes(33), bytes(20), "zz", b"\x05" + bytes(64)])
def test_bad_public_keys_are_clear_errors(bad: bytes | str) -> None:
    with pytest.raises(InvalidEncryption):
        normalize_pubkey(bad)


def test_bad_private_keys_and_aes_keys_are_clear_errors() -> None:
    with pytest.raises(InvalidEncryption, match="private key"):
        compute_pubkey(bytes(32))
    with pytest.raises(InvalidEncryption, match="private key"):
        compute_pubkey(SECP256K1_ORDER.to_bytes(32, "big"))
    with pytest.raises(InvalidEncryption, match="32 bytes"):
        crypt_at(bytes(16), bytes(16), 0, b"x")


@given(keys, keys, nonces)
def test_the_key_check_passes_the_right_key_and_refuses_a_wrong_one(key: bytes, other: bytes, nonce: bytes) -> None:
    header = new_symmetric_header(nonce)
    tags = encode_key_check_tags(key, nonce)
    assert validate_key_check(key, header, tags) is True
    if other != key:
        with pytest.raises(WrongKey, match="wrong encryption key"):
            validate_key_check(other, header, tags)


def test_files_without_a_key_check_decrypt_unchecked() -> None:
    header = new_symmetric_header(bytes(16))
    stream_tags = hashlib.sha256(b"STREAM").digest() + bytes(32)
    for tags in (b"", stream_tags, b"zgos/enc/v1", b"zgos/enc/v1" + bytes(17)):
        assert decode_key_check_tags(tags) is None
        assert validate_key_check(bytes(32), header, tags) is False


def test_a_v1_header_cannot_derive_an_ecies_key() -> None:
    with pytest.raises(InvalidEncryption, match="symmetric key"):
        compute_ecies_decrypt_key((5).to_bytes(32, "big"), new_symmetric_header(bytes(16)))
