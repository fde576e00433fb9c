"""Nothing assumes one host (issue 19 §1): a service bound to a routable address of this
machine (not loopback) announces the URL it was told, serves clients that found it on chain,
and its operator administers it from another address with the install token.

The address is this machine's own non-loopback IPv4 address (``ip -4 addr``): a connection to it
comes from that address, not from 127.0.0.1, as a connection from another host would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.hosts import routable_address
from tests.integration.clirunner import zg
from tests.servers import await_http, stop_process
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.access import read_token
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port
from zgos.storage.client import StorageClient

PRIVATE = AddressPolicy(allow_private=True)


@pytest.fixture(scope="module")
def host_address() -> str:
    address = routable_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


def admin_call(url: str, token: str | None, method: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, headers=headers,
                      timeout=10)


@pytest.fixture
def node_on_host(host_address: str, devnet_dir: DataDir, tmp_path: Path,
                 new_account: LocalAccount) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``zg storage node`` bound to ``host_address``, announcing it, with remote admin."""
    port = free_port(host_address)
    url = f"http://{host_address}:{port}"
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "storage", "node", "--name", "far",
            "--host", host_address, "--port", str(port), "--public-url", url, "--remote-admin",
            "--confirmations", "0", "--poll", "0.1", "--no-sync"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")},
           "ZGOS_PRIVATE_KEY": new_account.key.hex()}
    log = tmp_path / "node.log"
    process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    try:
        await_http(f"{url}/health", "storage node on the host address", log, process)
        yield url, process
    finally:
        stop_process(process)


def test_a_node_bound_to_a_routable_address_is_found_on_chain_used_and_administered_across_hosts(
    node_on_host: tuple[str, subprocess.Popen[bytes]], devnet_dir: DataDir, chain: Chain, deployment: Deployment,
    new_account: LocalAccount, tmp_path: Path,
) -> None:
    url, _ = node_on_host
    registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
    announced = {n.operator: n.url for n in registry.nodes(NodeKind.STORAGE, limit=10_000)}
    for _ in range(100):  # the announcement is sent as the node starts
        if announced.get(new_account.address) == url:
            break
        announced = {n.operator: n.url for n in registry.nodes(NodeKind.STORAGE, limit=10_000)}
    assert announced.get(new_account.address) == url, "the node announced its public URL"

    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(70_000))
    with StorageClient([announced[new_account.address]], chain, deployment.address("Flow"), new_account,
                       policy=PRIVATE) as client:
        result = client.upload(path)
        assert client.download(result.root, tmp_path / "back.bin").size == path.stat().st_size
    assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()

    token = read_token(devnet_dir.token)
    assert admin_call(url, token, "admin_getSyncInfo").json()["result"]["syncedBlock"] >= 0
    assert admin_call(url, None, "admin_getSyncInfo").status_code == 401
    location = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "admin_getFileLocation",
                                     "params": [result.tx_seq]}, headers={"authorization": f"Bearer {token}"},
                          timeout=10).json()["result"]
    assert location[0]["ip"] == url.split("//")[1].split(":")[0], "the node names its own address, not 127.0.0.1"


def test_a_wildcard_bind_without_a_public_url_is_refused_before_the_node_starts(devnet_dir: DataDir) -> None:
    run = zg(devnet_dir.root, "storage", "node", "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "--public-url" in run.stderr


def test_a_devnet_up_on_a_routable_address_binds_and_announces_it_and_another_data_dir_joins_it(
    host_address: str, tmp_path: Path,
) -> None:
    import json
    import re

    from tests.integration.clirunner import devnet_chain_port, devnet_up
    from zgos.runtime.netutil import port_in_use

    root, port = tmp_path / "devnet", devnet_chain_port()
    up = devnet_up(root, port, "--only", "storage", "--host", host_address)
    try:
        assert up.returncode == 0, up.stderr
        network = json.loads((root / "network.json").read_text())
        assert network["rpc_url"] == f"http://{host_address}:{port}"
        assert all(url.startswith(f"http://{host_address}:") for url in network["services"].values())
        assert not port_in_use(port, "127.0.0.1"), "the chain listens on the address it was given, not loopback"

        joined = tmp_path / "elsewhere"
        join = zg(joined, "network", "join", "--rpc-url", network["rpc_url"], "--deployment", str(root / "deployment.json"),
                  "--outbound-allow", "private")
        assert join.returncode == 0, join.stderr
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(50_000))
        upload = zg(joined, "storage", "upload", str(path))  # nodes found on chain: the announced URL
        assert upload.returncode == 0, upload.stderr
        data_root = re.search(r"0x[0-9a-f]{64}", upload.stdout)
        assert data_root is not None, upload.stdout
        download = zg(joined, "storage", "download", data_root.group(0), str(tmp_path / "back.bin"))
        assert download.returncode == 0, download.stderr
        assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()
    finally:
        zg(root, "devnet", "down", timeout=120)
