"""A compute provider as the sealed executor of agent NFTs (issue 16 §5, Must hold): an
authorized user's ``run`` works and is billed for the hidden prompt within the signed bound,
an unauthorized user is refused, and a revoked user is refused from the next request on. The
user gets the answer only: the prompt and its key never leave the provider."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.compute.conftest import BrokerProcess, funded_account
from tests.integration.storage.conftest import RunningNode, start_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeRegistry
from zgos.compute.spec.billing import AGENT_PROMPT_MAX_TOKENS
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser, ProviderError
from zgos.inft.client import InftClient
from zgos.inft.contracts import InftContracts
from zgos.inft.oracles import parse_pubkey
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient

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


def test_an_authorized_user_runs_the_agent_and_others_and_revoked_users_are_refused(
        chain: Chain, deployment: Deployment, storage: RunningNode, executor: BrokerProcess,
        make_user: Callable[..., ComputeUser], tokens: TokenCounter, tmp_path: Path) -> None:
    owner = funded_account(chain)
    agent = tmp_path / "prompt.txt"
    agent.write_text(PROMPT)
    client = InftClient(InftContracts.from_deployment(chain, deployment), NodeRegistry(chain, deployment.address("NodeRegistry")),
                        StorageClient([storage.url], chain, deployment.address("Flow"), owner), owner,
                        OutboundClient(DEVNET_POLICY), tmp_path, deployment.deploy_block)
    token = client.mint([(agent, "system-prompt")])
    info = httpx.get(executor.url + "/v1/agents/executor", timeout=10).json()
    assert info["address"] == executor.provider.address
    client.grant_executor(token, parse_pubkey(info["pubkey"]))

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
