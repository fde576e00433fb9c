"""`zg kv` as a user runs it: a subprocess against a KV node and a storage node on the session
chain, each test on a fresh stream (named by a local alias) and with fresh accounts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.kv.conftest import KvSetup
from zgos.chain.accounts import PRIVATE_KEY_ENV, devnet_role
from zgos.chain.client import Chain
from zgos.kv.client import KvClient
from zgos.kv.spec.stream import MAX_KEY_SIZE
from zgos.runtime.datadir import DataDir
from zgos.storage.cli.encryption import ENCRYPTION_KEY_ENV
from zgos.storage.spec.encryption import SYMMETRIC_HEADER_SIZE, SYMMETRIC_VERSION, compute_pubkey

WATCH_TIMEOUT_S = 60


@dataclass
class KvCli:
    """``zg kv`` on one data dir, pointed at the test's KV node and storage node."""

    root: Path
    setup: KvSetup

    def read(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return zg(self.root, "kv", *args, "--node", self.setup.url, env=env)

    def write(self, account: LocalAccount, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
        signer = {PRIVATE_KEY_ENV: account.key.hex()}
        return zg(self.root, "kv", *args, "--node", self.setup.url, "--storage-node", self.setup.storage.url,
                  env={**signer, **(env or {})})


@pytest.fixture
def cli(kv: KvSetup, devnet_dir: DataDir) -> KvCli:
    added = zg(devnet_dir.root, "kv", "streams", "--add", "s", "0x" + kv.stream.hex())
    assert added.returncode == 0, added.stderr
    return KvCli(devnet_dir.root, kv)


def funded_account(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10 * 10**18)
    return account


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_set_get_del_and_list_with_prefix_limit_and_after(cli: KvCli, new_account: LocalAccount) -> None:
    written = ok(cli.write(new_account, "set", "s", "a/1", "one"))
    assert re.search(r"txSeq\s+\d+", written) and re.search(r"result\s+Commit", written)
    watch = subprocess.Popen([sys.executable, "-m", "zgos.cli", "--data-dir", str(cli.root), "kv", "watch", "s",
                              "--count", "4", "--interval", "0.1", "--node", cli.setup.url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stderr is not None and "watching s from version" in watch.stderr.readline()
        ok(cli.write(new_account, "tx", "s", "--set", "a/2=two", "--set", "a/3=three", "--set", "b=four",
                     "--del", "a/1"))
        watched, _ = watch.communicate(timeout=WATCH_TIMEOUT_S)
    finally:
        watch.kill()
    assert [line.split("\t")[1:] for line in watched.splitlines()] == [
        ["del", "a/1"], ["set", "a/2", "two"], ["set", "a/3", "three"], ["set", "b", "four"]]
    assert ok(cli.read("get", "s", "a/2")) == "two\n"
    deleted = cli.read("get", "s", "a/1")
    assert deleted.returncode == 1 and "deleted at version" in deleted.stderr
    page = cli.read("list", "s", "--prefix", "a/", "--limit", "1")
    assert [line.split("\t")[0] for line in ok(page).splitlines()] == ["a/2"]
    assert "--after 'a/2'" in page.stderr
    rest = ok(cli.read("list", "s", "--prefix", "a/", "--after", "a/2"))
    assert [line.split("\t")[::2] for line in rest.splitlines()] == [["a/3", "three"]]
    assert [line.split("\t")[0] for line in ok(cli.read("list", "s")).splitlines()] == ["a/2", "a/3", "b"]
    assert re.search(r"results\s+Commit 2", ok(cli.read("status")))
    assert f"s\t0x{cli.setup.stream.hex()}\tserved" in ok(cli.read("streams"))


def test_a_granted_writer_writes_and_a_non_writer_is_refused_with_the_result(
        cli: KvCli, chain: Chain, new_account: LocalAccount) -> None:
    owner, other = new_account, funded_account(chain)
    ok(cli.write(owner, "set", "s", "k", "owner's"))  # the first writer of a stream is its admin
    refused = cli.write(other, "set", "s", "k", "other's")
    assert refused.returncode == 1 and "SenderNoWritePermission" in refused.stdout, refused.stdout + refused.stderr
    assert "was not committed" in refused.stderr and "Traceback" not in refused.stderr
    ok(cli.write(owner, "grant-writer", "s", other.address))
    ok(cli.write(other, "set", "s", "k", "other's"))
    assert ok(cli.read("get", "s", "k")) == "other's\n"


def test_a_transaction_with_a_stale_read_version_gets_version_confliction(
        cli: KvCli, new_account: LocalAccount) -> None:
    ok(cli.write(new_account, "set", "s", "k", "first"))
    read = cli.read("get", "s", "k", "--show-version")
    read_at = re.search(r"read as of version (\d+)", read.stderr).group(1)  # type: ignore[union-attr]
    ok(cli.write(new_account, "set", "s", "k", "second"))
    stale = cli.write(new_account, "tx", "s", "--read", f"k@{read_at}", "--set", "k=third")
    assert stale.returncode == 1 and re.search(r"result\s+VersionConfliction", stale.stdout), stale.stdout
    assert "read again and retry" in stale.stderr
    assert ok(cli.read("get", "s", "k")) == "second\n"
    fresh = ok(cli.write(new_account, "tx", "s", "--read", "k", "--set", "k=third", "--set", "other=x"))
    assert "version " in fresh and "Commit" in fresh
    assert ok(cli.read("get", "s", "k")) == "third\n"


def test_encrypted_values_v1_and_v2_round_trip_and_the_node_stores_only_ciphertext(
        cli: KvCli, new_account: LocalAccount, tmp_path: Path) -> None:
    key = os.urandom(32).hex()
    ok(cli.write(new_account, "set", "s", "v1", "secret one", "--encrypt", env={ENCRYPTION_KEY_ENV: key}))
    with KvClient(cli.setup.url) as client:
        stored = client.get(cli.setup.stream, b"v1")
    assert stored is not None and stored.data[0] == SYMMETRIC_VERSION and b"secret" not in stored.data
    assert len(stored.data) == SYMMETRIC_HEADER_SIZE + len("secret one")
    assert ok(cli.read("get", "s", "v1", "--encryption-key", key)) == "secret one\n"
    assert ok(cli.read("get", "s", "v1", "--decrypt", env={ENCRYPTION_KEY_ENV: key})) == "secret one\n"
    no_key = cli.read("get", "s", "v1", "--decrypt")
    assert no_key.returncode == 1 and "symmetric key (v1)" in no_key.stderr
    # 0G's format has no MAC: a wrong key of the right kind decrypts to other bytes, silently
    garbage = tmp_path / "wrong-key"
    ok(cli.read("get", "s", "v1", "--encryption-key", os.urandom(32).hex(), "--out", str(garbage)))
    assert len(garbage.read_bytes()) == len("secret one") and garbage.read_bytes() != b"secret one"

    pubkey = "0x" + compute_pubkey(bytes(new_account.key)).hex()
    ok(cli.write(new_account, "set", "s", "v2", "secret two", "--encrypt", "--to", pubkey))
    signer = {PRIVATE_KEY_ENV: new_account.key.hex()}
    assert ok(cli.read("get", "s", "v2", "--decrypt", env=signer)) == "secret two\n"
    wrong_kind = cli.read("get", "s", "v2", "--encryption-key", key)
    assert wrong_kind.returncode == 1 and "wallet key (v2" in wrong_kind.stderr
    ok(cli.write(new_account, "set", "s", "plain", "hello"))
    plain = cli.read("get", "s", "plain", "--encryption-key", key)
    assert plain.returncode == 1 and "not encrypted in 0G's format" in plain.stderr


def test_bad_input_is_a_one_line_error_with_exit_1(devnet_dir: DataDir, tmp_path: Path, refused_url: str) -> None:
    big = tmp_path / "big-key"
    big.write_bytes(b"k" * (MAX_KEY_SIZE + 1))
    dead = refused_url
    stream = "0x" + "ab" * 32
    cases = {
        ("get", "nosuch", "k"): "unknown stream alias 'nosuch'",
        ("get", "0x12zz", "k"): "not a stream id",
        ("get", stream, "zz", "--hex"): "is not hex",
        ("set", stream, f"@{big}", "v", "--node", dead): f"a key is 1 to {MAX_KEY_SIZE} bytes",
        ("get", stream, "k", "--node", dead): f"cannot reach the KV node at {dead}",
        ("set", stream, "k", "", "--node", dead): "an empty value deletes the key",
        ("tx", stream, "--read", "a@1", "--read", "b@2", "--set", "a=1", "--node", dead): "one version",
        ("grant-writer", stream, "0x1234", "--node", dead): "not an address",
    }
    for args, message in cases.items():
        result = zg(devnet_dir.root, "kv", *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
