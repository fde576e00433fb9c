"""Keystores and account resolution (no chain needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from zgos.chain.accounts import (
    PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    devnet_account,
    list_keystores,
    load_keystore,
    resolve_account,
    save_keystore,
)
from zgos.core.errors import ConfigError

ANVIL_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_devnet_accounts_are_anvils_default_accounts() -> None:
    assert devnet_account(0).address == ANVIL_ACCOUNT_0


def test_keystore_round_trip(tmp_path: Path) -> None:
    account = Account.create()
    path = save_keystore(tmp_path, "alice", account, "correct horse")
    assert path.stat().st_mode & 0o077 == 0, "keystore must be private to its owner"
    assert load_keystore(tmp_path, "alice", "correct horse").key == account.key
    assert list_keystores(tmp_path) == {"alice": account.address}


def test_keystore_rejects_wrong_password_and_overwrite(tmp_path: Path) -> None:
    save_keystore(tmp_path, "bob", Account.create(), "pw")
    with pytest.raises(ConfigError, match="wrong password"):
        load_keystore(tmp_path, "bob", "nope")
    with pytest.raises(ConfigError, match="already exists"):
        save_keystore(tmp_path, "bob", Account.create(), "pw")


@pytest.mark.parametrize("name", ["../evil", "a b", "", "x" * 65])
def test_keystore_names_are_validated(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid account name"):
        save_keystore(tmp_path, name, Account.create(), "pw")


def test_resolve_account_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRIVATE_KEY_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    user = resolve_account(None, keystore=tmp_path, default_role="user", allow_devnet=True)
    assert user.address == devnet_account(1).address
    with pytest.raises(ConfigError, match="no account"):
        resolve_account(None, keystore=tmp_path, default_role="user", allow_devnet=False)
    with pytest.raises(ConfigError, match="only on the devnet"):
        resolve_account("devnet:3", keystore=tmp_path, default_role=None, allow_devnet=False)

    env_account = Account.create()
    monkeypatch.setenv(PRIVATE_KEY_ENV, env_account.key.hex())
    chosen = resolve_account(None, keystore=tmp_path, default_role="user", allow_devnet=True)
    assert chosen.address == env_account.address

    stored = Account.create()
    save_keystore(tmp_path, "carol", stored, "s3cret")
    with pytest.raises(ConfigError, match="locked"):
        resolve_account("carol", keystore=tmp_path, default_role=None, allow_devnet=False)
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    unlocked = resolve_account("carol", keystore=tmp_path, default_role=None, allow_devnet=False)
    assert unlocked.address == stored.address


def test_bad_private_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PRIVATE_KEY_ENV, "0x1234")
    with pytest.raises(ConfigError, match="not a valid private key"):
        resolve_account(None, keystore=tmp_path, default_role=None, allow_devnet=False)
