"""The whole fine-tuning marketplace with the real model: a user orders a LoRA fine-tune of
Gemma 3 270M on a dataset kept in storage, the provider process trains it, delivers the sealed
adapter (all in the shared ``tuned_gemma`` fixture, see conftest.py), and serves the tuned model
through llama.cpp + its broker as its own registered model; the user's verified chat answer
comes from the tuned model, and ``zg provenance show RESPONSE_ID`` walks response → tuned
model → task → dataset → uploader with every link verified."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest

from tests.e2e.conftest import ANSWER, QUESTION, TunedGemma
from tests.integration.clirunner import zg
from tests.integration.compute.conftest import RunningProxy, run_proxy  # noqa: F401 - fixture
from tests.servers import await_ready
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import ensure_gemma
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.runtime.netutil import http_ok


@pytest.mark.e2e
@pytest.mark.slow
def test_tuned_gemma_is_served_as_its_own_model_and_its_answers_trace_back_to_the_dataset(
    tuned_gemma: TunedGemma, chain: Chain, deployment: Deployment,
    run_proxy: Callable[..., RunningProxy],  # noqa: F811 - the imported fixture
) -> None:
    tuned, task_id = tuned_gemma, tuned_gemma.task_id
    root, user_env = tuned.data_dir.root, tuned.user_env

    # the provider serves the tuned model as its own registered model
    await_ready(lambda: http_ok(tuned.broker_url + "/health"), "the tuned model's broker", tuned.log)
    contracts = ComputeContracts.from_deployment(chain, deployment)
    service = contracts.service(tuned.provider.address)
    assert service.model == f"gemma-3-270m-ft{task_id}" and "0x" + service.model_hash.hex() == tuned.model_id
    listed = zg(root, "compute", "providers", env=user_env)
    assert f"gemma-3-270m-ft{task_id}" in listed.stdout

    compute_user = ComputeUser(contracts, tuned.user, tuned.data_dir.service("compute-user"),
                               tokens=TokenCounter(ensure_gemma()))
    compute_user.fund(tuned.provider.address, 10**18)
    answer = compute_user.chat(tuned.provider.address, [{"role": "user", "content": QUESTION}], max_tokens=12)
    assert ANSWER in answer.text
    assert answer.response.model_id == service.model and answer.response.model_hash == service.model_hash
    # and through the local OpenAI-compatible proxy with the stock openai client
    proxy = run_proxy(compute_user, [tuned.provider.address])
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.token, max_retries=0, timeout=120)
    assert service.model in [m.id for m in client.models.list().data]
    completion = client.chat.completions.create(
        model=service.model, messages=[{"role": "user", "content": QUESTION}], max_tokens=12)
    assert ANSWER in (completion.choices[0].message.content or "")

    shown = zg(root, "provenance", "show", answer.response_id, "--json", env=user_env)
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    flat, stack = [], [tree]
    while stack:
        item = stack.pop()
        flat.append(item)
        stack.extend(item["children"])
    kinds = {item["kind"]: item for item in flat}
    assert tree["kind"] == "response" and tree["verified"]
    assert kinds["task"]["verified"] and kinds["task"]["facts"]["user"] == tuned.user.address
    assert kinds["dataset"]["verified"] and kinds["dataset"]["facts"]["uploader"] == tuned.user.address
    assert any(item["kind"] == "model" and item["id"] == tuned.model_id and item["verified"] for item in flat)
