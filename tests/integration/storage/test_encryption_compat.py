"""zgos's file encryption against 0G's TypeScript SDK 1.2.8, both directions, byte for byte.

The SDK's ``EncryptedFile`` (v1 and v2) writes bytes that zgos decrypts, and what zgos writes the
SDK's ``decryptFile`` reads; no network: the format is the claim. Skips without node or the SDK.
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path

import pytest

from tests.nodejs import run_node
from zgos.storage.hasher import build_file_tree
from zgos.storage.spec.encryption import (
    EncryptionHeader,
    compute_ecies_decrypt_key,
    compute_pubkey,
    crypt_at,
    decrypt_bytes,
    encrypt_bytes,
    new_ecies_header,
    new_symmetric_header,
)

SIZES = [1, 15, 16, 17, 262_143, 700_001]


def _plaintexts(tmp_path: Path) -> list[Path]:
    rng = random.Random(0x15)
    paths = []
    for size in SIZES:
        path = tmp_path / f"plain-{size}.bin"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_0g_ts_sdk_encrypted_files_decrypt_in_zgos(tmp_path: Path, version: str) -> None:
    secret = secrets.token_bytes(32)  # v1: the AES key; v2: the recipient's private key
    material = secret.hex() if version == "v1" else compute_pubkey(secret).hex()
    for plain in _plaintexts(tmp_path):
        sealed = plain.with_suffix(".sdk")
        root = run_node("encryption.cjs", "encrypt", version, material, str(plain), str(sealed)).strip()
        blob = sealed.read_bytes()
        header = EncryptionHeader.decode(blob)
        key = secret if version == "v1" else compute_ecies_decrypt_key(secret, header)
        assert decrypt_bytes(key, blob) == plain.read_bytes()
        assert "0x" + build_file_tree(sealed).root.hex() == root  # the SDK's root of what it uploads


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_zgos_encrypted_files_decrypt_with_the_0g_ts_sdk(tmp_path: Path, version: str) -> None:
    secret = secrets.token_bytes(32)
    for plain in _plaintexts(tmp_path):
        if version == "v1":
            header, key = new_symmetric_header(secrets.token_bytes(16)), secret
        else:
            header, key = new_ecies_header(compute_pubkey(secret), secrets.token_bytes(32), secrets.token_bytes(16))
        sealed, opened = plain.with_suffix(".zgos"), plain.with_suffix(".out")
        sealed.write_bytes(encrypt_bytes(key, header, plain.read_bytes()))
        run_node("encryption.cjs", "decrypt", version, secret.hex(), str(sealed), str(opened))
        assert opened.read_bytes() == plain.read_bytes()


def test_crypt_at_any_offset_equals_the_sdk_including_counter_carry(tmp_path: Path) -> None:
    rng = random.Random(0x16)
    data = rng.randbytes(5000)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    cases = [(bytes(16), 0), (b"\x00" * 8 + b"\xff" * 8, 33), (b"\xff" * 16, 0), (b"\xff" * 16, 47),
             (rng.randbytes(16), 123_457)]
    for nonce, offset in cases:
        key = rng.randbytes(32)
        out = tmp_path / f"at-{offset}.bin"
        run_node("encryption.cjs", "cryptat", key.hex(), nonce.hex(), str(offset), str(source), str(out))
        assert out.read_bytes() == crypt_at(key, nonce, offset, data), (nonce.hex(), offset)
