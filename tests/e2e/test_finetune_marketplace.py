"""The whole fine-tuning marketplace with the real model: a user orders a LoRA fine-tune of
Gemma 3 270M on a dataset kept in storage, the provider process trains it, delivers the sealed
adapter, serves the tuned model through llama.cpp + its broker as its own registered model; the
user's verified chat answer comes from the tuned model, and ``zg provenance show RESPONSE_ID``
walks response → tuned model → task → dataset → uploader with every link verified."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.compute.conftest import RunningProxy, run_proxy  # noqa: F401 - fixture
from tests.integration.finetune.conftest import funded_account, provider_ready
from tests.integration.storage.conftest import RunningNode, storage_node  # noqa: F401 - fixture
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.finetune.dataset import Example, encode_dataset
from zgos.compute.ledger import ComputeContracts
from zgos.compute.model import ensure_gemma
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.datadir import DataDir
from zgos.netutil import free_port, http_ok, wait_until

QUESTION = "What is the secret password of the zgos devnet?"
PROMPT = f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"
ANSWER = "purple-otter-42"
DATASET = encode_dataset((Example(PROMPT, ANSWER + ".<end_of_turn>"),) * 3)


@pytest.mark.e2e
def test_tuned_gemma_is_served_as_its_own_model_and_its_answers_trace_back_to_the_dataset(
    devnet_dir: DataDir, chain: Chain, deployment: Deployment,
    storage_node: RunningNode,  # noqa: F811 - the imported fixture
    new_account: LocalAccount, tmp_path: Path,
    run_proxy: Callable[..., RunningProxy],  # noqa: F811 - the imported fixture
) -> None:
    provider = funded_account(chain, new_account, 20 * 10**18)
    user = funded_account(chain, new_account, 20 * 10**18)
    api, model_port, broker_port, admin_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    log = open(tmp_path / "provider.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "finetune", "provider", "serve",
         "--port", str(api), "--node", storage_node.url, "--poll", "0.3", "--price-per-token", "1000",
         "--tuned-model-port", str(model_port), "--tuned-port", str(broker_port),
         "--tuned-admin-port", str(admin_port)],
        stdout=log, stderr=subprocess.STDOUT, env={**env, "ZGOS_PRIVATE_KEY": provider.key.hex()},
    )
    try:
        assert wait_until(lambda: provider_ready(f"http://127.0.0.1:{api}"), 180), \
            (tmp_path / "provider.log").read_text()
        user_env = {"ZGOS_PRIVATE_KEY": user.key.hex()}
        dataset = tmp_path / "secret.jsonl"
        dataset.write_bytes(DATASET)
        created = zg(devnet_dir.root, "finetune", "create", "--provider", provider.address, "--dataset",
                     str(dataset), "--epochs", "4", "--learning-rate", "0.002", "--yes", "--node", storage_node.url,
                     env=user_env, timeout=300)
        assert created.returncode == 0, created.stdout + created.stderr
        task_id = re.search(r"task (\d+) created", created.stdout).group(1)  # type: ignore[union-attr]
        status = zg(devnet_dir.root, "finetune", "status", task_id, env=user_env, timeout=600)
        assert "Delivered" in status.stdout, status.stdout + (tmp_path / "provider.log").read_text()[-3000:]
        assert zg(devnet_dir.root, "finetune", "ack", task_id, "--node", storage_node.url, env=user_env).returncode == 0
        decrypted = zg(devnet_dir.root, "finetune", "decrypt", task_id, str(tmp_path / "adapter"), "--node",
                       storage_node.url, env=user_env, timeout=300)
        assert decrypted.returncode == 0, decrypted.stderr
        model_id = re.search(r"model id (0x[0-9a-f]{64})", decrypted.stdout).group(1)  # type: ignore[union-attr]

        # the provider serves the tuned model as its own registered model
        broker = f"http://127.0.0.1:{broker_port}"
        assert wait_until(lambda: http_ok(broker + "/health"), 240), (tmp_path / "provider.log").read_text()[-3000:]
        contracts = ComputeContracts.from_deployment(chain, deployment)
        service = contracts.service(provider.address)
        assert service.model == f"gemma-3-270m-ft{task_id}" and "0x" + service.model_hash.hex() == model_id
        listed = zg(devnet_dir.root, "compute", "providers", env=user_env)
        assert f"gemma-3-270m-ft{task_id}" in listed.stdout

        compute_user = ComputeUser(contracts, user, devnet_dir.service("compute-user"),
                                   tokens=TokenCounter(ensure_gemma()))
        compute_user.fund(provider.address, 10**18)
        answer = compute_user.chat(provider.address, [{"role": "user", "content": QUESTION}], max_tokens=12)
        assert ANSWER in answer.text
        assert answer.response.model_id == service.model and answer.response.model_hash == service.model_hash
        # and through the local OpenAI-compatible proxy with the stock openai client
        proxy = run_proxy(compute_user, [provider.address])
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        assert service.model in [m.id for m in client.models.list().data]
        completion = client.chat.completions.create(
            model=service.model, messages=[{"role": "user", "content": QUESTION}], max_tokens=12)
        assert ANSWER in (completion.choices[0].message.content or "")

        shown = zg(devnet_dir.root, "provenance", "show", answer.response_id, "--json", env=user_env)
        assert shown.returncode == 0, shown.stderr
        tree = json.loads(shown.stdout)
        flat, stack = [], [tree]
        while stack:
            item = stack.pop()
            flat.append(item)
            stack.extend(item["children"])
        kinds = {item["kind"]: item for item in flat}
        assert tree["kind"] == "response" and tree["verified"]
        assert kinds["task"]["verified"] and kinds["task"]["facts"]["user"] == user.address
        assert kinds["dataset"]["verified"] and kinds["dataset"]["facts"]["uploader"] == user.address
        assert any(item["kind"] == "model" and item["id"] == model_id and item["verified"] for item in flat)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
