"""Accounts: the devnet mnemonic, encrypted keystores (eth-account, scrypt) and the environment.

Private keys are never printed or logged. A command that signs chooses its account with
``--account``: a keystore name (password from ``ZGOS_KEYSTORE_PASSWORD`` or a prompt), a
devnet index (``devnet:3``), or nothing, which means ``ZGOS_PRIVATE_KEY`` if set, else the
devnet's default account for that role.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.chain.networks import DEVNET_MNEMONIC, DEVNET_ROLES
from zgos.core.errors import ConfigError

PRIVATE_KEY_ENV = "ZGOS_PRIVATE_KEY"
PASSWORD_ENV = "ZGOS_KEYSTORE_PASSWORD"
KEYSTORE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Account.enable_unaudited_hdwallet_features()


@lru_cache(maxsize=64)
def devnet_account(index: int) -> LocalAccount:
    """The devnet mnemonic's account ``m/44'/60'/0'/0/index`` (anvil's default accounts)."""
    account: LocalAccount = Account.from_mnemonic(
        DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


def devnet_role(role: str, offset: int = 0) -> LocalAccount:
    return devnet_account(DEVNET_ROLES[role] + offset)


def keystore_path(keystore: Path, name: str) -> Path:
    if not KEYSTORE_NAME.match(name):
        raise ConfigError(
            f"invalid account name {name!r}", "use letters, digits, '.', '_' or '-' (max 64)"
        )
    return keystore / f"{name}.json"


def save_keystore(keystore: Path, name: str, account: LocalAccount, password: str) -> Path:
    """Encrypt ``account`` with ``password`` into ``keystore/name.json`` (never overwrites)."""
    if not password:
        raise ConfigError("empty keystore password", f"set {PASSWORD_ENV} or type one")
    path = keystore_path(keystore, name)
    if path.exists():
        raise ConfigError(f"account {name!r} already exists at {path}", "choose another name")
    keystore.mkdir(parents=True, exist_ok=True)
    encrypted = Account.encrypt(account.key, password)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(encrypted, handle)
    tmp.replace(path)
    return path


def load_keystore(keystore: Path, name: str, password: str) -> LocalAccount:
    path = keystore_path(keystore, name)
    try:
        encrypted = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no account named {name!r} in {keystore}", "see `zg account list`") from None
    try:
        key = Account.decrypt(encrypted, password)
    except ValueError:
        raise ConfigError(f"wrong password for account {name!r}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def list_keystores(keystore: Path) -> dict[str, str]:
    """Map keystore name -> checksummed address, read without decrypting."""
    result: dict[str, str] = {}
    for path in sorted(keystore.glob("*.json")):
        try:
            address = json.loads(path.read_text())["address"]
        except (OSError, ValueError, KeyError):
            continue
        result[path.stem] = to_checksum_address("0x" + address.lower().removeprefix("0x"))
    return result


def account_from_private_key(text: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(text.strip())
    except (ValueError, TypeError):
        raise ConfigError("not a valid private key", "expected 32 bytes of hex") from None
    return account


def resolve_account(
    spec: str | None,
    *,
    keystore: Path,
    default_role: str | None,
    allow_devnet: bool,
    password: Callable[[], str] | None = None,
) -> LocalAccount:
    """Resolve ``--account`` into a signing account (see the module docstring for the order)."""
    if spec is None:
        if env_key := os.environ.get(PRIVATE_KEY_ENV):
            return account_from_private_key(env_key)
        if allow_devnet and default_role is not None:
            return devnet_role(default_role)
        raise ConfigError(
            "no account to sign with",
            f"pass --account NAME (see `zg account list`) or set {PRIVATE_KEY_ENV}",
        )
    if spec.startswith("devnet:"):
        if not allow_devnet:
            raise ConfigError("devnet accounts exist only on the devnet (chain id 31337)")
        try:
            return devnet_account(int(spec.removeprefix("devnet:")))
        except ValueError:
            raise ConfigError(f"bad devnet account {spec!r}", "use devnet:N, e.g. devnet:1") from None
    secret = os.environ.get(PASSWORD_ENV)
    if secret is None:
        if password is None:
            raise ConfigError(f"account {spec!r} is locked", f"set {PASSWORD_ENV}")
        secret = password()
    return load_keystore(keystore, spec, secret)
