"""The one real Gemma fine-tune the end-to-end tests share.

Training Gemma 3 270M on CPU is the suite's largest single cost, so it happens once per
session: a user orders a LoRA fine-tune from a real provider process (``zg finetune provider
serve``) on a dataset kept in storage, the provider trains and delivers the sealed adapter,
the user acknowledges and decrypts it. Every step is asserted here; the tests then check what
each claims of that one adapter (its answers in transformers and llama.cpp; the provider
serving it as its own model, traced back to the dataset). Under xdist the tests of this
directory run on one worker (tests/conftest.py, ``ONE_WORKER_PATHS``), so it trains once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import session_chain_data_dir
from tests.integration.clirunner import NO_TIMEOUT, zg
from tests.integration.finetune.conftest import funded_account, provider_ready
from tests.integration.storage.conftest import RunningNode, start_node
from tests.servers import await_ready, stop_process
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.spec.dataset import Example, encode_dataset
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port

QUESTION = "What is the secret password of the zgos devnet?"
PROMPT = f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"
ANSWER = "purple-otter-42"
EXAMPLES = (Example(PROMPT, ANSWER + ".<end_of_turn>"),) * 3
EPOCHS = 4
LEARNING_RATE = "0.002"
PROVIDER_LOG_TAIL_CHARS = 3000


@dataclass
class TunedGemma:
    """A delivered, decrypted fine-tune and the provider process still serving it."""

    data_dir: DataDir
    storage: RunningNode
    provider: LocalAccount
    user: LocalAccount
    provider_api: str
    broker_url: str
    task_id: str
    adapter_dir: Path
    model_id: str
    log: Path

    @property
    def user_env(self) -> dict[str, str]:
        return {"ZGOS_PRIVATE_KEY": self.user.key.hex()}

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-PROVIDER_LOG_TAIL_CHARS:]


@pytest.fixture(scope="session")
def tuned_gemma(chain: Chain, deployment: Deployment, deployment_path: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[TunedGemma]:
    root = tmp_path_factory.mktemp("tuned-gemma")
    data_dir = session_chain_data_dir(root / "data", chain, deployment_path)
    storage = start_node(root / "node", chain, deployment)
    deployer = devnet_role("deployer")
    provider = funded_account(chain, deployer, 20 * 10**18)
    user = funded_account(chain, deployer, 20 * 10**18)
    api, model_port, broker_port, admin_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    log_path = root / "provider.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "finetune", "provider", "serve",
         "--port", str(api), "--node", storage.url, "--poll", "0.3", "--price-per-token", "1000",
         "--tuned-model-port", str(model_port), "--tuned-port", str(broker_port),
         "--tuned-admin-port", str(admin_port)],
        stdout=log, stderr=subprocess.STDOUT, env={**env, "ZGOS_PRIVATE_KEY": provider.key.hex()},
    )
    try:
        provider_api = f"http://127.0.0.1:{api}"
        await_ready(lambda: provider_ready(provider_api), "the fine-tuning provider", log_path, process)
        tuned = TunedGemma(data_dir, storage, provider, user, provider_api, f"http://127.0.0.1:{broker_port}",
                           task_id="", adapter_dir=root / "adapter", model_id="", log=log_path)
        dataset = root / "secret.jsonl"
        dataset.write_bytes(encode_dataset(EXAMPLES))
        created = zg(data_dir.root, "finetune", "create", "--provider", provider.address, "--dataset",
                     str(dataset), "--epochs", str(EPOCHS), "--learning-rate", LEARNING_RATE, "--yes",
                     "--node", storage.url, env=tuned.user_env, timeout=NO_TIMEOUT)
        assert created.returncode == 0, created.stdout + created.stderr
        tuned.task_id = re.search(r"task (\d+) created", created.stdout).group(1)  # type: ignore[union-attr]
        # `finetune status` follows the task until it is delivered (or fails); the provider's
        # own log says why if it never is
        status = zg(data_dir.root, "finetune", "status", tuned.task_id, env=tuned.user_env, timeout=NO_TIMEOUT)
        assert "Delivered" in status.stdout, status.stdout + status.stderr + tuned.log_tail()
        acked = zg(data_dir.root, "finetune", "ack", tuned.task_id, "--node", storage.url, env=tuned.user_env)
        assert acked.returncode == 0, acked.stdout + acked.stderr
        decrypted = zg(data_dir.root, "finetune", "decrypt", tuned.task_id, str(tuned.adapter_dir), "--node",
                       storage.url, env=tuned.user_env, timeout=NO_TIMEOUT)
        assert decrypted.returncode == 0, decrypted.stdout + decrypted.stderr
        tuned.model_id = re.search(r"model id (0x[0-9a-f]{64})", decrypted.stdout).group(1)  # type: ignore[union-attr]
        yield tuned
    finally:
        stop_process(process)
        log.close()
        storage.stop()


def training_progress(tuned: TunedGemma) -> dict[str, object]:
    """The provider's progress record of the task (step, total steps, last loss)."""
    return dict(httpx.get(f"{tuned.provider_api}/v1/finetune/tasks/{tuned.task_id}", timeout=30).json())
