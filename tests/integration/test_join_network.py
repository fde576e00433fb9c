"""Joining an existing network (issue 19 §2): price a deployment without paying for it, join a
chain with its deployment file (or URL), and run commands against it with flags anywhere."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_account import Account

from tests.integration.clirunner import zg
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.netutil import free_port


def test_deploy_dry_run_prints_each_contracts_gas_and_the_total_cost_and_deploys_nothing(
    tmp_path: Path, chain: Chain,
) -> None:
    from zgos.devnet.plan import PLAN

    unfunded = Account.create()
    run = zg(tmp_path / "data", "chain", "deploy", "--rpc-url", chain.rpc_url, "--dry-run",
             env={"ZGOS_PRIVATE_KEY": unfunded.key.hex()}, timeout=300)
    assert run.returncode == 0, run.stderr
    for item in PLAN:
        assert item.name in run.stdout
    assert "total" in run.stdout and "gwei per gas" in run.stdout and "short by" in run.stdout
    assert chain.w3.eth.get_transaction_count(unfunded.address) == 0, "nothing was sent"
    assert not (tmp_path / "data" / "deployment.json").exists()


@pytest.fixture
def deployment_url(deployment_path: Path) -> Iterator[str]:
    """The session deployment file, served over HTTP as a network would publish it."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(deployment_path.parent))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{deployment_path.name}"
    server.shutdown()
    server.server_close()


def test_a_data_dir_that_joined_a_network_by_url_runs_every_command_against_it(
    tmp_path: Path, chain: Chain, deployment: Deployment, deployment_url: str,
) -> None:
    data = tmp_path / "joined"
    joined = zg(data, "network", "join", "--rpc-url", chain.rpc_url, "--deployment", deployment_url,
                "--confirmations", "1", "--outbound-allow", "loopback")
    assert joined.returncode == 0, joined.stderr
    record = json.loads((data / "network.json").read_text())
    assert record["rpc_url"] == chain.rpc_url and record["confirmations"] == 1
    assert Deployment.from_json(json.loads((data / "deployment.json").read_text())).addresses == deployment.addresses
    status = zg(data, "chain", "status")
    assert status.returncode == 0 and deployment.address("Flow") in status.stdout
    assert "confirmations" in zg(data, "network", "show").stdout


def test_global_flags_work_after_the_command(tmp_path: Path, chain: Chain, deployment_path: Path) -> None:
    address = Account.create().address
    run = zg(tmp_path / "none", "account", "balance", address, "--rpc-url", chain.rpc_url)
    assert run.returncode == 0 and "0 0G" in run.stdout, run.stderr
    status = zg(tmp_path / "none", "chain", "status", f"--rpc-url={chain.rpc_url}", "--deployment", str(deployment_path))
    assert status.returncode == 0 and "Flow" in status.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--deployment", "x.json"), "cannot reach the chain RPC"),
    (("--rpc-url", "SESSION", "--deployment", "/nonexistent.json"), "no deployment at"),
    (("--rpc-url", "SESSION"), "pass --deployment"),
    (("nosuchnet",), "unknown network"),
])
def test_joining_with_bad_input_is_a_clear_error(tmp_path: Path, chain: Chain, args: tuple[str, ...],
                                                 says: str) -> None:
    argv = [chain.rpc_url if a == "SESSION" else a for a in args]
    if "--rpc-url" not in argv and "nosuchnet" not in argv:
        argv = ["--rpc-url", "http://127.0.0.1:1", *argv]
    run = zg(tmp_path / "d", "network", "join", *argv)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert says in run.stderr


def test_joining_does_not_overwrite_a_devnets_data_dir_or_take_a_file_with_bad_addresses(
    tmp_path: Path, chain: Chain, deployment_path: Path,
) -> None:
    devnet = tmp_path / "devnet"
    devnet.mkdir()
    (devnet / "network.json").write_text(json.dumps({"rpc_url": chain.rpc_url, "services": {"chain": chain.rpc_url}}))
    refused = zg(devnet, "network", "join", "--rpc-url", chain.rpc_url, "--deployment", str(deployment_path))
    assert refused.returncode == 1 and "runs a devnet" in refused.stderr and "--force" in refused.stderr

    bad = json.loads(deployment_path.read_text())
    bad["contracts"]["Flow"]["address"] = "0xnot-an-address"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    run = zg(tmp_path / "d", "network", "join", "--rpc-url", chain.rpc_url, "--deployment", str(tmp_path / "bad.json"))
    assert run.returncode == 1 and "Traceback" not in run.stderr and "Flow's address" in run.stderr
