"""Against a chain without ``eth_sendRawTransactionSync`` and with 2 s blocks, on another host,
every CLI command works (issue 19, "Must hold").

The chain is anvil with ``--block-time 2`` bound to this machine's routable address (loopback if
it has none), behind ``StrictRpcProxy``: the proxy answers ``eth_sendRawTransactionSync`` with
"method not found", as geth and 0G's chain do, and refuses every other request with HTTP 429, as
a public RPC under load does. The contracts are deployed with anvil mining each transaction at
once (``evm_setAutomine``) to keep the test short; then blocks come every 2 s. A data dir joins
it (``zg network join``) and the core commands run there: chain and account commands, a storage
node, upload and download. (DA needs four signers and compute a model server: their commands are
covered on the devnet chain; their chain path is the same ``Chain``.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from tests.chainproxy import StrictRpcProxy
from tests.hosts import routable_address
from tests.integration.clirunner import zg
from tests.servers import await_http, stop_process
from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import deploy_all
from zgos.runtime.netutil import free_port, wait_until

BLOCK_TIME_S = 2


@dataclass
class SlowChain:
    host: str
    proxy: StrictRpcProxy
    deployment: Path


@pytest.fixture(scope="module")
def slow_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowChain]:
    from zgos.devnet.plan import PLAN

    work = tmp_path_factory.mktemp("slow-chain")
    host = routable_address() or "127.0.0.1"
    anvil = Anvil(AnvilConfig(host=host, port=free_port(host), block_time_s=BLOCK_TIME_S), work / "anvil.log")
    anvil.start()
    try:
        fast = Chain(anvil.url)
        fast.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        deploy_all(fast, devnet_role("deployer"), work / "deployment.json", PLAN)
        fast.w3.provider.make_request("evm_setIntervalMining", [BLOCK_TIME_S])  # type: ignore[arg-type]
        proxy = StrictRpcProxy(anvil.url, refuse_every=2, host=host)
        yield SlowChain(host, proxy, work / "deployment.json")
        proxy.stop()
    finally:
        anvil.stop()


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, f"{run.args[4:]}: {run.stderr}"
    return run.stdout


def test_every_cli_command_works_on_a_chain_without_sync_send_and_2s_blocks(
    slow_chain: SlowChain, tmp_path: Path,
) -> None:
    data, rpc = tmp_path / "data", slow_chain.proxy.url
    ok(zg(data, "network", "join", "--rpc-url", rpc, "--deployment", str(slow_chain.deployment),
          "--outbound-allow", "loopback,private"))
    assert "Flow" in ok(zg(data, "chain", "status"))
    someone = Account.create().address
    ok(zg(data, "account", "fund", someone, "0.5"))
    assert "0.5 0G" in ok(zg(data, "account", "balance", someone))

    port = free_port(slow_chain.host)
    url = f"http://{slow_chain.host}:{port}"
    log = tmp_path / "node.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    node = subprocess.Popen([sys.executable, "-m", "zgos.cli", "--data-dir", str(data), "storage", "node",
                             "--host", slow_chain.host, "--port", str(port), "--account", "devnet:2",
                             "--confirmations", "1", "--poll", "0.5", "--no-sync"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    try:
        await_http(f"{url}/health", "storage node on the slow chain", log, node)
        # it announces itself in the background, a transaction or two of 2 s blocks behind /health
        assert wait_until(lambda: "announced" in log.read_text(), 60), log.read_text()[-2000:]
        path = tmp_path / "f.bin"
        path.write_bytes(os.urandom(40_000))
        uploaded = ok(zg(data, "storage", "upload", str(path)))  # the node found on chain
        root = re.search(r"0x[0-9a-f]{64}", uploaded)
        assert root is not None, uploaded
        ok(zg(data, "storage", "download", root.group(0), str(tmp_path / "back.bin")))
        assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()
    finally:
        stop_process(node)
    assert slow_chain.proxy.refused > 0, "the RPC rate-limited the commands, and they waited it out"
    assert slow_chain.proxy.sync_sends >= 1, "they asked for sync sends, and fell back to send + poll"
