"""Encrypted uploads and decrypting downloads with `zg storage`, on a real node and the session chain.

Issue 15 §5 and its last must-hold: wrong key or wrong recipient on decrypt is a clear error and
leaves no partial plaintext file behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.storage.conftest import RunningNode
from zgos.chain.accounts import devnet_account
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.datadir import DataDir
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import submission_tags
from zgos.storage.hasher import build_file_tree
from zgos.storage.spec.encryption import (
    SYMMETRIC_HEADER_SIZE,
    compute_pubkey,
    decode_key_check_tags,
    decrypt_bytes,
)

SIZE = 600_001  # three segments, the last one partial


def _upload(data_dir: DataDir, node: RunningNode, path: Path, account: LocalAccount, *flags: str,
            env: dict[str, str] | None = None) -> str:
    result = zg(data_dir.root, "storage", "upload", str(path), "--node", node.url, *flags,
                env={"ZGOS_PRIVATE_KEY": account.key.hex(), **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "encrypted" in result.stdout
    return next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("root"))


def _download(data_dir: DataDir, node: RunningNode, root: str, out: Path, *flags: str,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return zg(data_dir.root, "storage", "download", root, str(out), "--node", node.url, *flags, env=env)


def test_v1_encrypted_upload_downloads_as_plaintext_with_the_key_and_as_stored_bytes_without(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
) -> None:
    plain = tmp_path / "secret.bin"
    plain.write_bytes(os.urandom(SIZE))
    key = secrets.token_hex(32)
    root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt", env={"ZGOS_ENCRYPTION_KEY": key})
    by_env = _download(devnet_dir, storage_node, root, tmp_path / "a.bin", "--decrypt",
                       env={"ZGOS_ENCRYPTION_KEY": key})
    assert by_env.returncode == 0, by_env.stderr
    assert "key checked against the chain" in by_env.stdout
    assert (tmp_path / "a.bin").read_bytes() == plain.read_bytes()
    by_flag = _download(devnet_dir, storage_node, root, tmp_path / "b.bin", "--encryption-key", "0x" + key)
    assert by_flag.returncode == 0, by_flag.stderr
    assert (tmp_path / "b.bin").read_bytes() == plain.read_bytes()
    stored = _download(devnet_dir, storage_node, root, tmp_path / "stored.bin")
    assert stored.returncode == 0, stored.stderr
    blob = (tmp_path / "stored.bin").read_bytes()
    assert len(blob) == SYMMETRIC_HEADER_SIZE + SIZE and blob[0] == 1
    assert decrypt_bytes(bytes.fromhex(key), blob) == plain.read_bytes()
    assert list((devnet_dir.root / "staged-uploads").iterdir()) == []  # the staged ciphertext is removed


def test_v2_encrypted_upload_to_a_pubkey_decrypts_with_the_recipients_account(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
) -> None:
    plain = tmp_path / "secret.bin"
    plain.write_bytes(os.urandom(SIZE))
    recipient = Account.create()
    root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt",
                   "--to", compute_pubkey(bytes(recipient.key)).hex())
    out = tmp_path / "out.bin"
    done = _download(devnet_dir, storage_node, root, out, "--decrypt", env={"ZGOS_PRIVATE_KEY": recipient.key.hex()})
    assert done.returncode == 0, done.stderr
    assert "v2" in done.stdout and "key checked" in done.stdout
    assert out.read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_wrong_key_or_wrong_recipient_on_decrypt_is_a_clear_error_and_leaves_no_plaintext_file(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount, version: str,
) -> None:
    plain = tmp_path / "secret.bin"
    plain.write_bytes(os.urandom(SIZE))
    outdir = tmp_path / "downloads"
    outdir.mkdir()
    out = outdir / "out.bin"
    if version == "v1":
        root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt",
                       env={"ZGOS_ENCRYPTION_KEY": secrets.token_hex(32)})
        refused = _download(devnet_dir, storage_node, root, out, "--decrypt",
                            env={"ZGOS_ENCRYPTION_KEY": secrets.token_hex(32)})
        expected = "wrong encryption key"
    else:
        recipient, intruder = Account.create(), Account.create()
        root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt",
                       "--to", compute_pubkey(bytes(recipient.key)).hex())
        refused = _download(devnet_dir, storage_node, root, out, "--decrypt",
                            env={"ZGOS_PRIVATE_KEY": intruder.key.hex()})
        expected = "wrong recipient"
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert expected in refused.stderr and "Traceback" not in refused.stderr
    assert not out.exists() and list(outdir.iterdir()) == []


def test_the_key_check_is_in_the_submission_tags_on_chain(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
    chain: Chain, deployment: Deployment,
) -> None:
    plain = tmp_path / "secret.bin"
    plain.write_bytes(os.urandom(1000))
    root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt",
                   env={"ZGOS_ENCRYPTION_KEY": secrets.token_hex(32)})
    with StorageClient([storage_node.url], chain, deployment.address("Flow")) as client:
        file, locations = client.verified_locations(bytes.fromhex(root[2:]))
        tags = submission_tags(client, file, locations)
    assert tags is not None and decode_key_check_tags(tags) is not None


def test_a_plain_file_with_decrypt_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"hello, not encrypted\n" * 100)
    upload = zg(devnet_dir.root, "storage", "upload", str(plain), "--node", storage_node.url,
                env={"ZGOS_PRIVATE_KEY": new_account.key.hex()})
    assert upload.returncode == 0, upload.stderr
    root = next(line.split()[1] for line in upload.stdout.splitlines() if line.startswith("root"))
    out = tmp_path / "dl" / "out.bin"
    refused = _download(devnet_dir, storage_node, root, out, "--decrypt", env={"ZGOS_ENCRYPTION_KEY": "11" * 32})
    assert refused.returncode == 1 and "not an encrypted file" in refused.stderr, refused.stderr
    assert not out.exists()


def test_bad_encryption_flags_are_clear_errors(tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode) -> None:
    plain = tmp_path / "p.bin"
    plain.write_bytes(b"x" * 100)
    cases = [
        (["--encrypt"], "--encrypt needs a key"),
        (["--encrypt", "--encryption-key", "abcd"], "2 bytes, not 32"),
        (["--encrypt", "--to", "0x" + "12" * 20], "no public key is known"),
        (["--encrypt", "--to", "0x" + "02" + "00" * 32], "not a point on secp256k1"),
        (["--encryption-key", "11" * 32], "only apply with --encrypt"),
    ]
    for flags, message in cases:
        result = zg(devnet_dir.root, "storage", "upload", str(plain), "--node", storage_node.url, *flags)
        assert result.returncode == 1 and message in result.stderr, (flags, result.stderr)
        assert "11" * 32 not in result.stderr


def test_encrypted_upload_resumes_from_its_staged_ciphertext(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
) -> None:
    """A failed encrypted upload leaves its ciphertext staged; the rerun uploads that same
    ciphertext (same data root, so the pipeline resumes) and removes it once done."""
    plain = tmp_path / "big.bin"
    plain.write_bytes(os.urandom(SIZE))
    env = {"ZGOS_PRIVATE_KEY": new_account.key.hex(), "ZGOS_ENCRYPTION_KEY": secrets.token_hex(32)}
    failed = zg(devnet_dir.root, "storage", "upload", str(plain), "--encrypt", "--node", "http://127.0.0.1:9", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    staging = devnet_dir.root / "staged-uploads"
    [staged] = staging.glob("*.enc")
    staged_root = "0x" + build_file_tree(staged).root.hex()
    root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt", env=env)
    assert root == staged_root
    assert list(staging.iterdir()) == []
    again = _download(devnet_dir, storage_node, root, tmp_path / "o.bin", "--decrypt", env=env)
    assert again.returncode == 0 and (tmp_path / "o.bin").read_bytes() == plain.read_bytes()


def test_v2_to_a_devnet_address_decrypts_with_that_devnet_account(
    tmp_path: Path, devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount,
) -> None:
    plain = tmp_path / "secret.bin"
    plain.write_bytes(os.urandom(1000))
    root = _upload(devnet_dir, storage_node, plain, new_account, "--encrypt", "--to", devnet_account(5).address)
    out = tmp_path / "out.bin"
    done = _download(devnet_dir, storage_node, root, out, "--decrypt", "--account", "devnet:5")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == plain.read_bytes()
    other = _download(devnet_dir, storage_node, root, tmp_path / "no.bin", "--decrypt", "--account", "devnet:6")
    assert other.returncode == 1 and "wrong recipient" in other.stderr
    assert not (tmp_path / "no.bin").exists()
