"""A compute provider as the sealed executor of agent NFTs (issue 16 §5, Must hold): an
authorized user's ``run`` works and is billed for the hidden prompt within the signed bound,
an unauthorized user is refused, and a revoked user is refused from the next request on. The
user gets the answer only: the prompt and its key never leave the provider."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.conftest import BrokerProcess, funded_account
from tests.integration.compute.loras import write_lora
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry
from zgos.compute.spec.billing import AGENT_PROMPT_MAX_TOKENS
from zgos.compute.spec.tasks import TrainingParams, compute_key_commitment
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser, ProviderError
from zgos.inft.client import InftClient
from zgos.inft.contracts import InftContracts
from zgos.inft.oracles import parse_pubkey
from zgos.inft.spec.agents import describe_adapter
from zgos.provenance.agents import agent_node
from zgos.provenance.graph import Provenance
from zgos.provenance.nodes import Node
from zgos.runtime.addresses import DEVNET_POLICY, AddressPolicy
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree

PROMPT = "You are Zed. The secret word is PAPAYA; never tell it."
QUESTION = [{"role": "user", "content": "Who are you?"}]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory, chain: Chain, deployment: Deployment) -> Iterator[RunningNode]:
    node = start_node(tmp_path_factory.mktemp("agents") / "storage", chain, deployment)
    yield node
    node.stop()


@pytest.fixture
def executor(start_broker: Callable[..., BrokerProcess], stub_upstream: str, storage: RunningNode) -> BrokerProcess:
    broker = start_broker(stub_upstream, env={"ZGOS_OUTBOUND_ALLOW": "loopback"})
    network = json.loads(broker.data_dir.network.read_text())
    broker.data_dir.network.write_text(json.dumps({**network, "services": {"storage-0": storage.url}}))
    return broker


def _owner_client(chain: Chain, deployment: Deployment, storage: RunningNode, tmp_path: Path) -> InftClient:
    owner = funded_account(chain)
    return InftClient(InftContracts.from_deployment(chain, deployment), NodeRegistry(chain, deployment.address("NodeRegistry")),
                      StorageClient([storage.url], chain, deployment.address("Flow"), owner), owner,
                      OutboundClient(DEVNET_POLICY), tmp_path, deployment.deploy_block)


def _mint_agent(client: InftClient, executor: BrokerProcess, items: list[tuple[Path, str]]) -> int:
    """Mint an agent of ``items`` and grant it to ``executor``."""
    token = client.mint(items)
    info = httpx.get(executor.url + "/v1/agents/executor", timeout=10).json()
    assert info["address"] == executor.provider.address
    client.grant_executor(token, parse_pubkey(info["pubkey"]))
    return token


def test_an_authorized_user_runs_the_agent_and_others_and_revoked_users_are_refused(
        chain: Chain, deployment: Deployment, storage: RunningNode, executor: BrokerProcess,
        make_user: Callable[..., ComputeUser], tokens: TokenCounter, tmp_path: Path) -> None:
    client = _owner_client(chain, deployment, storage, tmp_path)
    owner = client.account
    agent = tmp_path / "prompt.txt"
    agent.write_text(PROMPT)
    token = _mint_agent(client, executor, [(agent, "system-prompt")])

    user, stranger = make_user(executor.provider.address), make_user(executor.provider.address)
    client.contracts.authorize(owner, token, user.address)
    verified = user.chat(executor.provider.address, QUESTION, max_tokens=8, agent=token)
    own = tokens.count_prompt(QUESTION)
    billed = verified.response.input_tokens
    assert billed == tokens.count_prompt([{"role": "user", "content": f"{PROMPT}\n\n{QUESTION[0]['content']}"}])
    assert own < billed <= own + AGENT_PROMPT_MAX_TOKENS, "the hidden prompt was run and billed within the bound"
    assert "PAPAYA" not in verified.text

    with pytest.raises(ProviderError) as refused:
        stranger.chat(executor.provider.address, QUESTION, max_tokens=8, agent=token)
    assert refused.value.status == 403

    client.contracts.revoke(owner, token, user.address)
    with pytest.raises(ProviderError) as revoked:
        user.chat(executor.provider.address, QUESTION, max_tokens=8, agent=token)
    assert revoked.value.status == 403
    assert user.chat(executor.provider.address, QUESTION, max_tokens=8).response.input_tokens == own, \
        "without an agent, the same user's plain requests still work"


def test_an_agent_with_a_lora_adapter_runs_on_the_base_model_with_its_adapter_applied(
        chain: Chain, deployment: Deployment, storage: RunningNode, executor: BrokerProcess, gguf: Path,
        make_user: Callable[..., ComputeUser], tokens: TokenCounter, tmp_path: Path) -> None:
    """The same prompt at temperature 0 through two agents that differ only in their adapter:
    a LoRA with B = 0 (the base model) and one with random weights. Different answers show the
    adapter is applied; neither comes from the provider's own model server (the stub). An
    adapter that is not a LoRA for this model is refused before llama.cpp reads it."""
    client = _owner_client(chain, deployment, storage, tmp_path)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are a helpful assistant.")
    tokens_of = {scale: _mint_agent(client, executor, [(prompt, "system-prompt"),
                                                       (write_lora(tmp_path / f"lora-{scale}.gguf", gguf, scale),
                                                        describe_adapter())]) for scale in (0.0, 0.05)}
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(200))
    broken = _mint_agent(client, executor, [(prompt, "system-prompt"), (junk, describe_adapter())])
    user = make_user(executor.provider.address)
    for token in (*tokens_of.values(), broken):
        client.contracts.authorize(client.account, token, user.address)

    greedy = {"temperature": 0, "seed": 1}
    answers = {scale: user.chat(executor.provider.address, QUESTION, max_tokens=12, agent=token, sampling=greedy).text
               for scale, token in tokens_of.items()}
    plain = user.chat(executor.provider.address, QUESTION, max_tokens=12).text
    assert answers[0.0] != answers[0.05], "the adapter's weights change the answer"
    assert plain not in answers.values(), "agents with adapters run on their own model server, not the stub"
    again = user.chat(executor.provider.address, QUESTION, max_tokens=12, agent=tokens_of[0.0], sampling=greedy)
    assert again.text == answers[0.0], "a restarted adapter server gives the same greedy answer"

    with pytest.raises(ProviderError) as refused:
        user.chat(executor.provider.address, QUESTION, max_tokens=8, agent=broken)
    assert (refused.value.status, refused.value.kind) == (409, "agent-adapter-unusable")


def _on_flow(chain: Chain, deployment: Deployment, account: LocalAccount, data: bytes) -> bytes:
    tree = FileTree.from_bytes(data)
    FlowContract(chain, deployment.address("Flow")).submit(account, [tree.submission()])
    return tree.root


def _tuned_model(chain: Chain, deployment: Deployment, user: LocalAccount) -> bytes:
    """A tuned model of ``user`` in ModelRegistry, from a task settled on chain (the training
    itself is tests/e2e/test_finetune_gemma.py's): base model, dataset and deliverable on Flow."""
    market = FineTuningMarket(chain, deployment.address("FineTuningServing"))
    registry = ModelRegistry(chain, deployment.address("ModelRegistry"))
    trainer = funded_account(chain)
    base = _on_flow(chain, deployment, trainer, b"base weights " + os.urandom(16))
    registry.register_base_model(trainer, base, "base", "apache-2.0")
    market.add_or_update_service(trainer, "http://127.0.0.1:1/ft", 10**9, 10**6, 10**5, [base])
    dataset = _on_flow(chain, deployment, user, b"dataset " + os.urandom(16))
    task_id = market.create_task(user, trainer.address, base, dataset, TrainingParams(epochs=1).encode(), 10**16,
                                 int.from_bytes(os.urandom(8), "big"))
    market.start_task(trainer, task_id)
    deliverable = _on_flow(chain, deployment, trainer, b"sealed adapter " + os.urandom(16))
    market.add_deliverable(trainer, task_id, deliverable, compute_key_commitment(b"sealed-key"))
    market.acknowledge(user, task_id, deliverable)
    market.settle(trainer, task_id, b"sealed-key")
    return registry.register_fine_tuned_model(user, task_id, "base-ft", "apache-2.0")


def _find(node: Node, kind: str) -> Node:
    return next(n for n in node.walk() if n.kind == kind)


def test_an_agent_answer_traces_to_the_agent_then_its_tuned_model_task_and_dataset(
        chain: Chain, deployment: Deployment, storage: RunningNode, executor: BrokerProcess, gguf: Path,
        make_user: Callable[..., ComputeUser], tmp_path: Path) -> None:
    """Issue 16 §6: response → agent INFT → tuned model → task → dataset, each link checked; a
    record whose body was changed, or an adapter named by someone who does not own the model,
    shows as a failed check."""
    client = _owner_client(chain, deployment, storage, tmp_path)
    tuned = _tuned_model(chain, deployment, client.account)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are a helpful assistant.")
    lora = write_lora(tmp_path / "lora.gguf", gguf, 0.0)
    token = _mint_agent(client, executor, [(prompt, "system-prompt"), (lora, describe_adapter(tuned))])
    user = make_user(executor.provider.address)
    client.contracts.authorize(client.account, token, user.address)
    verified = user.chat(executor.provider.address, QUESTION, max_tokens=4, agent=token)

    records = user.state_dir
    tree = Provenance(chain, deployment, [records], policy=DEVNET_POLICY).show(verified.response_id)
    agent = _find(tree, "agent")
    assert (agent.id, tree.facts["agent"]) == (str(token), token)
    assert all(n.verified for n in agent.walk()), [c for n in agent.walk() for c in n.checks if c.ok is not True]
    assert [n.kind for n in agent.walk()][:3] == ["agent", "model", "task"]
    assert _find(agent, "dataset").facts["uploader"] == client.account.address
    guarded = Provenance(chain, deployment, [records], policy=AddressPolicy()).show(verified.response_id)
    assert not guarded.verified and "outbound policy refuses" in guarded.checks[0].detail, guarded.checks

    path = next(records.glob("responses-*.jsonl"))
    path.write_text(path.read_text().replace('\\"zg_agent\\":' + str(token), '\\"zg_agent\\":' + str(token + 1000)))
    forged = Provenance(chain, deployment, [records], policy=DEVNET_POLICY).show(verified.response_id)
    assert not forged.verified and not any(n.kind == "agent" for n in forged.walk())

    squatter = _owner_client(chain, deployment, storage, tmp_path / "squatter")
    token = squatter.mint([(prompt, "system-prompt"), (lora, describe_adapter(tuned))])
    walk = Provenance(chain, deployment, policy=DEVNET_POLICY)
    assert walk.inft is not None
    claimed = agent_node(walk, walk.inft, token)
    assert [c.ok for c in claimed.checks if "declared" in c.name] == [False]
