"""The `zg` command line against the session chain: output, and one-line errors."""

from __future__ import annotations

from eth_account import Account

from tests.integration.clirunner import zg
from zgos.chain.client import Chain
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port


def assert_one_line_error(result: object, *fragments: str) -> None:
    assert result.returncode == 1, result  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_version_and_help(tmp_path) -> None:
    assert zg(tmp_path, "version").stdout.startswith("zgos ")
    help_text = zg(tmp_path, "--help").stdout
    for command in ("chain", "account", "devnet"):
        assert command in help_text


def test_chain_status_shows_chain_and_deployment(devnet_dir: DataDir) -> None:
    result = zg(devnet_dir.root, "chain", "status")
    assert result.returncode == 0, result.stderr
    assert "chain id 31337 (devnet)" in result.stdout
    assert "NodeRegistry" in result.stdout


def test_account_new_list_balance_fund(devnet_dir: DataDir, chain: Chain) -> None:
    env = {"ZGOS_KEYSTORE_PASSWORD": "pw"}
    created = zg(devnet_dir.root, "account", "new", "alice", env=env)
    assert created.returncode == 0, created.stderr
    address = created.stdout.split()[1]
    listing = zg(devnet_dir.root, "account", "list").stdout
    assert "alice" in listing and address in listing

    funded = zg(devnet_dir.root, "account", "fund", "alice", "2.5")
    assert funded.returncode == 0, funded.stderr
    assert chain.balance(address) == 25 * 10**17
    balance = zg(devnet_dir.root, "account", "balance", "alice")
    assert f"{address} 2.5 0G" in balance.stdout


def test_account_import_never_prints_the_key(devnet_dir: DataDir) -> None:
    account = Account.create()
    key = account.key.hex()
    env = {"ZGOS_KEYSTORE_PASSWORD": "pw", "ZGOS_PRIVATE_KEY": key}
    result = zg(devnet_dir.root, "account", "import", "bob", env=env)
    assert result.returncode == 0, result.stderr
    assert account.address in result.stdout
    assert key.removeprefix("0x") not in result.stdout + result.stderr


def test_unreachable_rpc_is_one_line(tmp_path) -> None:
    result = zg(tmp_path, "--rpc-url", f"http://127.0.0.1:{free_port()}", "chain", "status")
    assert_one_line_error(result, "cannot reach the chain RPC", "zg devnet up")


def test_missing_deployment_is_one_line(devnet_dir: DataDir) -> None:
    devnet_dir.deployment.unlink()
    result = zg(devnet_dir.root, "chain", "deploy", "--account", "devnet:9")
    assert result.returncode == 0, "deploy creates the missing deployment"
    devnet_dir.deployment.unlink()
    status = zg(devnet_dir.root, "chain", "status")
    assert "contracts: none (no deployment" in status.stdout


def test_unfunded_account_is_one_line(devnet_dir: DataDir) -> None:
    devnet_dir.deployment.unlink()
    env = {"ZGOS_PRIVATE_KEY": Account.create().key.hex()}
    result = zg(devnet_dir.root, "chain", "deploy", env=env)
    assert_one_line_error(result, "needs", "zg account fund")


def test_bad_amount_and_bad_name_are_one_line(devnet_dir: DataDir) -> None:
    assert_one_line_error(zg(devnet_dir.root, "account", "fund", "devnet:5", "lots"), "not an amount")
    assert_one_line_error(zg(devnet_dir.root, "account", "balance", "nobody"), "not an address")


def test_faucet_refuses_non_devnet_chain_ids(devnet_dir: DataDir) -> None:
    result = zg(devnet_dir.root, "account", "new", "x", env={})
    assert_one_line_error(result, "no keystore password", "ZGOS_KEYSTORE_PASSWORD")
