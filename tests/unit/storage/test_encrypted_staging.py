"""Staging an encrypted upload (zgos.storage.encrypted): streamed, reused on a rerun, key material."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from zgos.storage.encrypted import STAGE_CHUNK_BYTES, Keys, Recipient, encrypt_file, stage
from zgos.storage.spec.encryption import (
    EncryptionHeader,
    InvalidEncryption,
    compute_ecies_decrypt_key,
    compute_pubkey,
    decode_key_check_tags,
    decrypt_bytes,
    validate_key_check,
)


def test_streamed_encryption_across_chunks_equals_a_whole_decrypt(tmp_path: Path) -> None:
    plain = tmp_path / "p.bin"
    plain.write_bytes(os.urandom(2 * STAGE_CHUNK_BYTES + 12345))
    recipient = Recipient(symmetric_key=secrets.token_bytes(32))
    sealing = recipient.seal()
    encrypt_file(plain, tmp_path / "c.bin", sealing)
    assert decrypt_bytes(sealing.key, (tmp_path / "c.bin").read_bytes()) == plain.read_bytes()


def test_a_rerun_reuses_the_staged_ciphertext_and_a_changed_file_gets_a_new_one(tmp_path: Path) -> None:
    plain, staging = tmp_path / "p.bin", tmp_path / "staged"
    plain.write_bytes(os.urandom(5000))
    secret = secrets.token_bytes(32)
    recipient = Recipient(pubkey=compute_pubkey(secret))
    first, tags = stage(plain, recipient, staging)
    again, tags_again = stage(plain, recipient, staging)
    assert (first, tags) == (again, tags_again)
    blob = first.read_bytes()
    header = EncryptionHeader.decode(blob)
    key = compute_ecies_decrypt_key(secret, header)
    assert validate_key_check(key, header, tags) and decrypt_bytes(key, blob) == plain.read_bytes()
    assert secret.hex() not in first.name and decode_key_check_tags(tags) is not None
    plain.write_bytes(os.urandom(5000))
    os.utime(plain, ns=(1, 1))
    changed, _ = stage(plain, recipient, staging)
    assert changed != first and decrypt_bytes(compute_ecies_decrypt_key(secret, EncryptionHeader.decode(
        changed.read_bytes())), changed.read_bytes()) == plain.read_bytes()
    assert not list(staging.glob("*.part"))


def test_missing_key_material_names_what_the_file_needs() -> None:
    v1 = Recipient(symmetric_key=bytes(32)).seal().header
    v2 = Recipient(pubkey=compute_pubkey((3).to_bytes(32, "big"))).seal().header
    with pytest.raises(InvalidEncryption, match="symmetric key"):
        Keys(private_key=(3).to_bytes(32, "big")).key_for(v1)
    with pytest.raises(InvalidEncryption, match="wallet key"):
        Keys(symmetric_key=bytes(32)).key_for(v2)
    with pytest.raises(InvalidEncryption, match="either"):
        Recipient()
