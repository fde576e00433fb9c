"""Encrypted KV values: ``zg kv set --encrypt`` and ``zg kv get --encryption-key/--decrypt`` take
the flags of ``zg storage upload/download`` (``zgos.storage.cli.encryption``), and a value is
stored in 0G's format (``zgos.storage.spec.encryption``): header (v1 17 bytes, v2 50 bytes) +
AES-256-CTR ciphertext, so the KV node never sees plaintext and 0G's clients decrypt it.

Wrong keys: the format has no MAC, and a KV value has no submission tags of its own to carry
zgos's key check (a KV transaction's tags name its streams). So ``get`` detects what the bytes
tell (a value that is not in 0G's format, a v1 value without a symmetric key, a v2 value
without ``--decrypt``), but a wrong key of the right kind decrypts to garbage, as with 0G's
clients. zgos keeps 0G's format rather than add a check 0G's clients would not read.
"""

from __future__ import annotations

from zgos.cli.context import CliContext
from zgos.storage.cli.encryption import download_keys, upload_recipient
from zgos.storage.encrypted import Keys
from zgos.storage.spec.encryption import (
    EncryptionHeader,
    InvalidEncryption,
    crypt_at,
    encrypt_bytes,
)


def seal_value(cli: CliContext, value: bytes, encrypt: bool, key_flag: str | None, to: str | None) -> bytes:
    """``value`` encrypted as the flags ask (unchanged without ``--encrypt``)."""
    recipient = upload_recipient(cli, encrypt, key_flag, to)
    if recipient is None:
        return value
    sealing = recipient.seal()
    return encrypt_bytes(sealing.key, sealing.header, value)


def decrypt_value(keys: Keys, stored: bytes) -> bytes:
    """The plaintext of an encrypted value; ``InvalidEncryption`` if it is not in 0G's format
    or the keys given do not fit its version."""
    try:
        header = EncryptionHeader.decode(stored)
    except InvalidEncryption as exc:
        raise InvalidEncryption(f"the value is not encrypted in 0G's format: {exc.message}",
                                "read it without --decrypt/--encryption-key to see the stored bytes") from None
    try:
        key = keys.key_for(header)
    except InvalidEncryption as exc:
        raise InvalidEncryption(exc.message.replace("this file", "this value"), exc.hint) from None
    return crypt_at(key, header.nonce, 0, stored[header.size:])


def open_value(cli: CliContext, stored: bytes, key_flag: str | None, decrypt: bool, account: str | None) -> bytes:
    """What ``get`` prints: the stored bytes, or with the decryption flags their plaintext."""
    keys = download_keys(cli, key_flag, decrypt, account)
    return stored if keys is None else decrypt_value(keys, stored)
