"""The explorer against the session chain: JSON API, bad input, and the page in a real browser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.explorer.explorer_fixtures import CHROMIUM, browser_dom
from tests.servers import await_http
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.devnet.services import all_services
from zgos.runtime.netutil import free_port
from zgos.runtime.service import DevnetOptions


def test_status_blocks_and_nodes_reflect_the_chain(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    registry = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    chain.transact(new_account, registry.functions.announce(0, "http://explorer-test:1", 0, 1, b""))
    status = httpx.get(f"{explorer}/api/status").json()
    assert status["chainId"] == 31337
    assert status["contracts"]["NodeRegistry"] == deployment.address("NodeRegistry")
    blocks = httpx.get(f"{explorer}/api/blocks?limit=3").json()
    assert len(blocks) == 3 and blocks[0]["number"] > blocks[1]["number"]
    nodes = httpx.get(f"{explorer}/api/nodes").json()
    assert {"operator": new_account.address, "url": "http://explorer-test:1"}.items() <= next(
        n for n in nodes["storage"] if n["operator"] == new_account.address
    ).items()


def test_the_deployment_file_is_served_so_another_host_joins_by_its_url(
    explorer: str, chain: Chain, tmp_path: Path,
) -> None:
    from tests.integration.clirunner import zg

    served = Deployment.from_json(httpx.get(f"{explorer}/api/deployment").json())
    assert served.addresses == httpx.get(f"{explorer}/api/status").json()["contracts"]
    joined = zg(tmp_path / "joined", "network", "join", "--rpc-url", chain.rpc_url,
                "--deployment", f"{explorer}/api/deployment")
    assert joined.returncode == 0, joined.stderr


def test_bad_query_is_a_4xx_with_a_message(explorer: str) -> None:
    response = httpx.get(f"{explorer}/api/blocks?limit=0")
    assert response.status_code == 400 and "limit" in response.json()["detail"]
    assert httpx.get(f"{explorer}/api/blocks?limit=abc").status_code == 422


def test_unreachable_chain_is_a_503_not_a_crash(tmp_path: Path, refused_url: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(tmp_path), "--rpc-url",
         refused_url, "explorer", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await_http(f"{url}/health", "the explorer", process=process)
        response = httpx.get(f"{url}/api/status")
        assert response.status_code == 503 and "cannot reach" in response.json()["detail"]
        assert httpx.get(f"{url}/").status_code == 200, "the page itself still loads"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root)")
def test_page_renders_network_state_in_a_browser(explorer: str, tmp_path: Path) -> None:
    dom = browser_dom(explorer, tmp_path / "profile", 4000)
    assert "chain 31337" in dom, dom[:2000]
    assert "NodeRegistry" in dom
    assert "sectors in the flow" in dom, "the storage panel rendered"
    assert "oracles must sign a transfer" in dom, "the INFT panel rendered"


def test_lineage_endpoint_and_graph_show_a_registered_model(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount, tmp_path: Path
) -> None:
    import os

    from zgos.compute.finetune.contracts import ModelRegistry
    from zgos.storage.contracts import FlowContract
    from zgos.storage.spec.filetree import FileTree

    weights = FileTree.from_bytes(b"explorer model " + os.urandom(16))  # only its uploader may register it
    FlowContract(chain, deployment.address("Flow")).submit(new_account, [weights.submission()])
    model_id = weights.root
    ModelRegistry(chain, deployment.address("ModelRegistry")).register_base_model(
        new_account, model_id, "explorer-lineage-model", "MIT")
    tree = httpx.get(f"{explorer}/api/provenance/0x{model_id.hex()}", timeout=30).json()
    assert tree["kind"] == "model" and tree["label"] == "base model explorer-lineage-model"
    assert {"name": "registered in ModelRegistry", "ok": True} .items() <= tree["checks"][0].items()
    assert tree["checks"][1]["ok"] is True and new_account.address in tree["checks"][1]["detail"], "uploaded by"
    assert {"name": "registered by the first uploader of its root", "ok": True}.items() <= tree["checks"][2].items()
    bad = httpx.get(f"{explorer}/api/provenance/xyz")
    assert bad.status_code == 400 and "32-byte" in bad.json()["detail"]
    unknown = httpx.get(f"{explorer}/api/provenance/0x{'cd' * 32}", timeout=30)
    assert unknown.status_code == 404 and "not a registered model" in unknown.json()["detail"]
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the graph was not drawn in a browser")
    dom = browser_dom(f"{explorer}/?lineage=0x{model_id.hex()}", tmp_path / "profile", 6000)
    assert 'id="lineage"' in dom and "base model explorer-lineage-model" in dom, dom[-3000:]
    assert 'data-kind="model"' in dom


def test_services_lists_the_devnet_table_with_each_services_state(explorer: str) -> None:
    """The services panel shows what ``zg devnet status`` shows for the explorer's data dir
    (``zg explorer serve`` hands the devnet's status to the app); here no devnet runs in it."""
    services = httpx.get(f"{explorer}/api/services", timeout=30).json()
    assert [s["name"] for s in services] == [s.name for s in all_services(DevnetOptions())]
    assert {s["state"] for s in services} == {"stopped"}
    assert all(s["pid"] is None for s in services)

def test_storage_and_compute_panels_show_live_node_state_and_services(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount, tmp_path: Path
) -> None:
    from tests.integration.storage.conftest import start_node
    from zgos.compute.contracts import ComputeContracts
    from zgos.compute.spec.billing import Prices

    node = start_node(tmp_path / "node", chain, deployment)
    registry = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    chain.transact(new_account, registry.functions.announce(0, node.url, 0, 1, b""))
    ComputeContracts.from_deployment(chain, deployment).register(
        new_account, url="http://127.0.0.1:9/explorer-test", model="explorer-test-model", model_hash=b"\x01" * 32,
        prices=Prices(input_price=7, output_price=11), signer=new_account.address)
    try:
        storage = httpx.get(f"{explorer}/api/storage", timeout=30).json()
        mine = next(n for n in storage["nodes"] if n["url"] == node.url)
        assert mine["error"] is None and mine["shard"] == "0/1" and mine["miner"] is None
        assert isinstance(mine["logSyncHeight"], int) and mine["nextTxSeq"] >= 0
        assert storage["flow"]["submissions"] >= 0 and storage["rewards"]["paid"] <= storage["rewards"]["deposited"]
    finally:
        node.stop()
    after = httpx.get(f"{explorer}/api/storage", timeout=30).json()
    assert next(n for n in after["nodes"] if n["url"] == node.url)["error"].startswith("unreachable")
    services = httpx.get(f"{explorer}/api/compute", timeout=30).json()
    assert {"provider": new_account.address, "model": "explorer-test-model", "inputPrice": 7, "outputPrice": 11}.items() \
        <= next(s for s in services if s["provider"] == new_account.address).items()


def test_inft_panel_lists_agents_newest_first_with_their_data_and_the_oracle_set(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    import os

    from zgos.inft.contracts import InftContracts, IntelligentData
    from zgos.storage.contracts import FlowContract
    from zgos.storage.spec.filetree import FileTree

    tree = FileTree.from_bytes(os.urandom(500))
    FlowContract(chain, deployment.address("Flow")).submit(new_account, [tree.submission()])
    contracts = InftContracts.from_deployment(chain, deployment)
    plain = contracts.mint_plain(new_account, new_account.address)
    agent = contracts.mint(new_account, [IntelligentData("system-prompt", tree.root)], new_account.address, [b"k"])
    state = httpx.get(f"{explorer}/api/inft", params={"limit": 2}, timeout=30).json()
    assert state["threshold"] == 2 and len(state["oracles"]) == 3
    assert [t["tokenId"] for t in state["tokens"]] == [agent, plain], "newest first"
    assert state["tokens"][0] == {"tokenId": agent, "owner": new_account.address, "authorized": [],
                                  "datas": [{"description": "system-prompt", "dataHash": "0x" + tree.root.hex()}]}
    assert state["tokens"][1]["datas"] == []
    older = httpx.get(f"{explorer}/api/inft", params={"before": plain, "limit": 100}, timeout=30).json()
    assert all(t["tokenId"] < plain for t in older["tokens"])
    assert httpx.get(f"{explorer}/api/inft", params={"limit": 0}, timeout=30).status_code == 422
