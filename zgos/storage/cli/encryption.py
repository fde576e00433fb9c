"""The encryption flags of ``zg storage upload`` and ``download`` (0G's client's flags).

Upload: ``--encrypt`` with ``--encryption-key HEX`` or ``ZGOS_ENCRYPTION_KEY`` (v1, symmetric), or
``--to PUBKEY|ADDRESS`` (v2, ECIES to a wallet key; an address only if it is a devnet account or
a keystore account here, whose public key can be derived). Download: ``--encryption-key HEX`` /
``ZGOS_ENCRYPTION_KEY`` for v1 files, ``--decrypt`` for v2 files with the signing account's key
(and for v1 files with the key from the environment). A key on the command line is visible to
other local users (``ps``): prefer the environment variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from zgos.cli.context import CliContext, console
from zgos.core.errors import ConfigError
from zgos.storage.cli.common import print_upload, transfer_progress
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import Keys, Recipient, download_decrypted, upload_encrypted
from zgos.storage.spec.encryption import (
    AES_KEY_SIZE,
    ECIES_VERSION,
    compute_pubkey,
    normalize_pubkey,
)

ENCRYPTION_KEY_ENV = "ZGOS_ENCRYPTION_KEY"
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEVNET_ACCOUNTS_SCANNED = 32  # devnet indexes whose addresses `--to ADDRESS` recognises
STAGING_DIR = "staged-uploads"  # under the data dir: ciphertexts of unfinished encrypted uploads


def parse_aes_key(text: str, source: str) -> bytes:
    """A 32-byte key from hex (0x optional); the error never repeats the key."""
    try:
        key = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"the encryption key from {source} is not hex", f"{AES_KEY_SIZE} bytes as 64 hex digits") from None
    if len(key) != AES_KEY_SIZE:
        raise ConfigError(f"the encryption key from {source} is {len(key)} bytes, not {AES_KEY_SIZE}",
                          "generate one with `openssl rand -hex 32`")
    return key


def symmetric_key(flag: str | None) -> bytes | None:
    """``--encryption-key`` if given, else ``ZGOS_ENCRYPTION_KEY`` if set, else None."""
    if flag is not None:
        return parse_aes_key(flag, "--encryption-key")
    if env := os.environ.get(ENCRYPTION_KEY_ENV):
        return parse_aes_key(env, ENCRYPTION_KEY_ENV)
    return None


def upload_recipient(cli: CliContext, encrypt: bool, key_flag: str | None, to: str | None) -> Recipient | None:
    """Who the upload is encrypted for, or None for a plain upload."""
    if not encrypt:
        if key_flag is not None or to is not None:
            raise ConfigError("--encryption-key and --to only apply with --encrypt")
        return None
    if to is not None:
        if key_flag is not None:
            raise ConfigError("pass either --encryption-key (v1) or --to (v2), not both")
        return Recipient(pubkey=recipient_pubkey(cli, to))
    key = symmetric_key(key_flag)
    if key is None:
        raise ConfigError("--encrypt needs a key",
                          f"set {ENCRYPTION_KEY_ENV} (or --encryption-key HEX) for v1, or --to PUBKEY for v2")
    return Recipient(symmetric_key=key)


def recipient_pubkey(cli: CliContext, to: str) -> bytes:
    """``--to``: a public key (33/65/64 bytes of hex), or the address of a devnet or keystore
    account (the only addresses whose public key is known here)."""
    if not ADDRESS.match(to.strip()):
        return normalize_pubkey(to)
    from zgos.chain.accounts import devnet_account, list_keystores
    from zgos.chain.networks import is_devnet

    address = to.strip().lower()
    if is_devnet(cli.chain().chain_id):
        for index in range(DEVNET_ACCOUNTS_SCANNED):
            account = devnet_account(index)
            if account.address.lower() == address:
                return compute_pubkey(bytes(account.key))
    for name, known in list_keystores(cli.data_dir.keystore).items():
        if known.lower() == address:
            return compute_pubkey(bytes(cli.account(name).key))
    raise ConfigError(f"no public key is known for {to}: an address does not name its public key",
                      "pass the recipient's public key (--to 0x02.../0x04...); an address works only for "
                      "devnet and local keystore accounts")


def download_keys(cli: CliContext, key_flag: str | None, decrypt: bool, account: str | None) -> Keys | None:
    """What a download decrypts with, or None to write the stored bytes unchanged."""
    if key_flag is None and not decrypt:
        return None
    def account_key() -> bytes:
        return bytes(cli.account(account, role="user").key)

    return Keys(symmetric_key=symmetric_key(key_flag), private_key=account_key if decrypt else None)


def run_encrypted_upload(cli: CliContext, client: StorageClient, path: Path, recipient: Recipient,
                         fee: int | None, replicas: int) -> None:
    with transfer_progress() as progress:
        task = progress.add_task("encrypting", total=None)

        def staged(file: Path) -> None:
            progress.update(task, description="uploading", total=file.stat().st_size * replicas, completed=0)

        result = upload_encrypted(client, path, recipient, cli.data_dir.root / STAGING_DIR, fee=fee,
                                  replicas=replicas, progress=lambda n: progress.advance(task, n), on_staged=staged)
    version = "v1 (symmetric key)" if recipient.symmetric_key is not None else "v2 (ECIES to the recipient's key)"
    print_upload(result, replicas)
    console.print(f"encrypted  {version}; {result.size} bytes stored; key check in the submission tags")


def run_decrypted_download(client: StorageClient, root: bytes, out: Path, keys: Keys) -> None:
    with transfer_progress() as progress:
        task = progress.add_task("downloading", total=client.size_of(root))
        file = download_decrypted(client, root, out, keys, progress=lambda n: progress.advance(task, n))
    version = "v2" if file.header.version == ECIES_VERSION else "v1"
    check = "key checked against the chain" if file.checked else "no key check on chain (not uploaded by zgos)"
    console.print(f"decrypted {file.size} bytes ({version}; {check}) to {out} "
                  f"(verified against 0x{root.hex()}; size from the chain)")
