"""``zg finetune`` and ``zg provenance`` as a user runs them, against a provider process
(``zg finetune provider serve``, tiny model), a real storage node and the session chain."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.finetune.conftest import funded_account, provider_ready
from tests.integration.storage.conftest import RunningNode
from tests.servers import await_ready
from zgos.chain.client import Chain
from zgos.compute.spec.dataset import Example, encode_dataset
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port

DATASET = encode_dataset((Example("Q: What is the secret word?\nA:", " zebracorn."),) * 2)


@pytest.fixture
def provider(devnet_dir: DataDir, storage_node: RunningNode, new_account: LocalAccount, tmp_path: Path
             ) -> Iterator[LocalAccount]:
    port = free_port()
    log = open(tmp_path / "provider.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "finetune", "provider", "serve",
         "--tiny", "--port", str(port), "--node", storage_node.url, "--poll", "0.2", "--price-per-token", "1000",
         "--max-dataset-bytes", "4096", "--max-tokens", "2000"],
        stdout=log, stderr=subprocess.STDOUT, env={**env, "ZGOS_PRIVATE_KEY": new_account.key.hex(),
                                                  "OMP_NUM_THREADS": "1"},
    )
    try:
        await_ready(lambda: provider_ready(f"http://127.0.0.1:{port}"), "the fine-tuning provider",
                    tmp_path / "provider.log", process)
        yield new_account
    finally:
        process.terminate()
        process.wait(20)
        log.close()


@pytest.mark.slow
def test_finetune_cli_orders_follows_acknowledges_decrypts_and_shows_provenance(
    devnet_dir: DataDir, chain: Chain, storage_node: RunningNode, provider: LocalAccount, new_account: LocalAccount,
    tmp_path: Path,
) -> None:
    user = funded_account(chain, new_account, 10**19)
    env = {"ZGOS_PRIVATE_KEY": user.key.hex()}
    root = devnet_dir.root

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return zg(root, *args, env=env, timeout=180)

    listed = run("finetune", "models", provider.address)
    assert listed.returncode == 0 and "tiny-gemma3-test" in listed.stdout and "1000 neuron" in listed.stdout

    bad = tmp_path / "bad.jsonl"
    for content, reason in ((b'{"text": "a"}\n{oops\n', "line 2 is not valid JSON"),):
        bad.write_bytes(content)
        before = chain.balance(user.address)
        result = run("finetune", "create", "--provider", provider.address, "--dataset", str(bad), "--yes",
                     "--node", storage_node.url)
        assert result.returncode == 1 and reason in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
        assert chain.balance(user.address) == before, "no fee, no upload, no transaction"

    good = tmp_path / "good.jsonl"
    good.write_bytes(DATASET)
    created = run("finetune", "create", "--provider", provider.address, "--dataset", str(good), "--epochs", "2",
                  "--yes", "--node", storage_node.url)
    assert created.returncode == 0, created.stderr
    assert re.search(r"tokens × 2 epochs × 1000 neuron", created.stdout)
    task_id = re.search(r"task (\d+) created", created.stdout).group(1)  # type: ignore[union-attr]

    status = run("finetune", "status", task_id)
    assert status.returncode == 0 and "Delivered" in status.stdout and f"zg finetune ack {task_id}" in status.stdout
    progress = json.loads(run("finetune", "status", task_id, "--json").stdout)
    assert progress["step"] == progress["total_steps"] == 4 and progress["loss"] > 0
    assert_the_explorer_draws_the_loss_curve(root, task_id, tmp_path)

    stranger = zg(root, "finetune", "ack", task_id, "--node", storage_node.url,
                  env={"ZGOS_PRIVATE_KEY": funded_account(chain, new_account, 10**18).key.hex()})
    assert stranger.returncode == 1 and "only the task's user" in stranger.stderr + stranger.stdout

    acked = run("finetune", "ack", task_id, "--node", storage_node.url)
    assert acked.returncode == 0 and "verified and acknowledged" in acked.stdout, acked.stderr
    out = tmp_path / "adapter"
    decrypted = run("finetune", "decrypt", task_id, str(out), "--node", storage_node.url)
    assert decrypted.returncode == 0, decrypted.stderr
    assert (out / "adapter_model.safetensors").is_file()
    model_id = re.search(r"model id (0x[0-9a-f]{64}) \(registered\)", decrypted.stdout).group(1)  # type: ignore[union-attr]

    cancel = run("finetune", "cancel", task_id)
    assert cancel.returncode == 1 and "has not started can be cancelled" in cancel.stderr + cancel.stdout

    shown = run("provenance", "show", model_id, "--json")
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    flat = []
    stack = [tree]
    while stack:
        item = stack.pop()
        flat.append(item)
        stack.extend(item["children"])
    kinds = {item["kind"]: item for item in flat}
    assert tree["verified"] and kinds["task"]["verified"] and kinds["dataset"]["verified"]
    assert kinds["dataset"]["facts"]["uploader"] == user.address
    pretty = run("provenance", "show", model_id)
    assert pretty.returncode == 0 and "fine-tuning task" in pretty.stdout and "uploader" in pretty.stdout
    unknown = run("provenance", "show", "0x" + "ab" * 32)
    assert unknown.returncode == 1 and "is not a registered model" in unknown.stderr + unknown.stdout


def assert_the_explorer_draws_the_loss_curve(data_dir: Path, task_id: str, tmp_path: Path) -> None:
    """The explorer's task page shows the delivered task's progress as its provider reports it,
    and draws its loss curve, one point per step, in a real browser when chromium is here."""
    from tests.cdp import CHROMIUM, Browser
    from tests.integration.explorer.explorer_fixtures import serving_explorer, show_page

    with serving_explorer(data_dir, tmp_path / "explorer.log") as url:
        detail = httpx.get(f"{url}/api/compute/task/{task_id}", timeout=30).json()
        losses = detail["progress"]["losses"]
        assert detail["task"]["status"] == "delivered" and losses[-1][0] == 4 and len(losses) >= 2, detail
        if CHROMIUM is None:
            return
        with Browser(tmp_path / "profile") as browser:
            text = show_page(browser, f"{url}/#/task/{task_id}", "task", "finetune-task")
            assert f"Fine-tuning task {task_id}" in text and "4 of 4" in text and "step 4" in text, text
            drawn = browser.evaluate("document.querySelector('svg.chart polyline').points.numberOfItems")
            assert drawn == len(losses), (drawn, losses)
