"""The auditor's compute probes against real brokers and real llama.cpp (issue 17 §2, §6):
an honest provider passes and is paid; one that over-bills, alters answers or serves another
model than it registered is caught by the probe that looks for it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.compute.conftest import BrokerProcess, funded_account
from tests.integration.compute.loras import write_lora
from tests.servers import await_ready
from zgos.alignment.auditor.compute import ComputeProbe
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.registry import NodeKind
from zgos.chain.standing import registry_standings
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import DEFAULT_MODEL_ID, model_hash, model_server_argv
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import Prices
from zgos.compute.user.client import ComputeUser
from zgos.compute.user.router import Router
from zgos.runtime.netutil import free_port

PROMPTS = ("Name three colours.", "What is the capital of Japan?")
DISHONEST = {"ZGOS_TEST_DISHONEST": "1"}


@pytest.fixture(scope="module")
def other_model(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model server of the same base with a LoRA that changes its answers: "another model"."""
    work = tmp_path_factory.mktemp("other-model")
    adapter = write_lora(work / "lora.gguf", gguf, 0.05)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "model.log", "wb") as log:
        process = subprocess.Popen([*model_server_argv(gguf, port=port, threads=1), "--lora_path", str(adapter)],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            await_ready(lambda: httpx.get(url + "/v1/models", timeout=1).status_code == 200, "the other model",
                        work / "model.log", process)
            yield url
        finally:
            process.terminate()
            process.wait(10)


def _probe(gguf: Path, user: ComputeUser, tmp_path: Path) -> ComputeProbe:
    registered = model_hash(gguf)
    return ComputeProbe(user, lambda digest: gguf if digest == registered else None, tmp_path)


def test_an_honest_provider_passes_every_probe_and_is_paid(
        broker: BrokerProcess, compute: ComputeContracts, gguf: Path,
        make_user: Callable[..., ComputeUser], tmp_path: Path) -> None:
    user = make_user(broker.provider.address)
    probe = _probe(gguf, user, tmp_path)
    try:
        outcomes = [probe.probe(compute.service(broker.provider.address), prompt) for prompt in PROMPTS * 2]
    finally:
        probe.close()
    assert all(o.clean for o in outcomes), [o.observations for o in outcomes]
    assert all(o.latency_s is not None for o in outcomes)
    records = [json.loads(line) for line in next(user.state_dir.glob("responses-*.jsonl")).read_text().splitlines()]
    assert len(records) == len(outcomes), "each honest answer was receipted"
    assert records[-1]["receipt_total"] == sum(json.loads(r["signed"])["fee"] for r in records) > 0


@pytest.mark.parametrize("mode, finding, words", [
    ("overbill", Finding.OTHER, "billed"),
    ("alter", Finding.WRONG_OUTPUT, "differ from what it signed"),
])
def test_a_provider_that_overbills_or_alters_answers_is_caught_by_one_probe(
        mode: str, finding: Finding, words: str, start_broker: Callable[..., BrokerProcess], model_server: str,
        compute: ComputeContracts, gguf: Path, make_user: Callable[..., ComputeUser], tmp_path: Path) -> None:
    cheat = start_broker(model_server, "--dishonest", mode, env=DISHONEST)
    user = make_user(cheat.provider.address)
    probe = ComputeProbe(user, lambda digest: None, tmp_path)  # no re-execution: the bill alone gives it away
    outcome = probe.probe(compute.service(cheat.provider.address), PROMPTS[0])
    assert [(o.finding, o.subject) for o in outcome.observations] == [(finding, cheat.provider.address)]
    assert words in outcome.observations[0].detail
    assert outcome.slashable is None, "its fee matches its (inflated) usage: not provable on chain"


def test_a_provider_serving_another_model_than_it_registered_is_caught_by_re_execution(
        start_broker: Callable[..., BrokerProcess], other_model: str, compute: ComputeContracts, gguf: Path,
        make_user: Callable[..., ComputeUser], tmp_path: Path) -> None:
    cheat = start_broker(other_model)
    user = make_user(cheat.provider.address)
    probe = _probe(gguf, user, tmp_path)
    try:
        outcomes = [probe.probe(compute.service(cheat.provider.address), prompt) for prompt in PROMPTS]
    finally:
        probe.close()
    findings = [o.finding for outcome in outcomes for o in outcome.observations]
    assert Finding.WRONG_OUTPUT in findings
    caught = next(o for outcome in outcomes for o in outcome.observations if o.finding == Finding.WRONG_OUTPUT)
    assert caught.evidence["answer"] != caught.evidence["expected"]


def test_the_router_stops_sending_traffic_to_a_slashed_provider_within_one_round(
        chain: Chain, deployment: Deployment, start_broker: Callable[..., BrokerProcess], stub_upstream: str,
        compute: ComputeContracts, make_user: Callable[..., ComputeUser]) -> None:
    """Two providers of one model, the cheaper one preferred, until an auditor slashes it with a
    response it signed whose fee its prices refute; the router's next refresh skips it."""
    alignment = AlignmentContracts.from_deployment(chain, deployment)
    cheap = start_broker(stub_upstream, prices=Prices(1, 1))
    fair = start_broker(stub_upstream, prices=Prices(2, 2))
    alignment.bond(cheap.provider, BondKind.COMPUTE, alignment.min_bond())
    auditor = funded_account(chain)
    alignment.register_auditor(auditor, alignment.min_auditor_stake())
    user = make_user()

    standings = registry_standings(chain, deployment, NodeKind.COMPUTE)
    router = Router(user, [cheap.provider.address, fair.provider.address], standings=standings, standings_refresh_s=0)
    assert [s.provider for s in router.candidates(DEFAULT_MODEL_ID)] == [cheap.provider.address, fair.provider.address]

    service = compute.service(cheap.provider.address)
    overbilled = v.Response(os.urandom(32), os.urandom(32), service.model, service.model_hash, 10, 10, 10**6)
    signature = v.sign_message(bytes(cheap.provider.key), compute.domain, overbilled)
    alignment.slash_compute(auditor, cheap.provider.address, overbilled, signature)
    assert [s.provider for s in router.candidates(DEFAULT_MODEL_ID)] == [fair.provider.address]
    assert {p.provider: p.slashed for p in router.describe(router.services()).providers} == {
        cheap.provider.address: True, fair.provider.address: False}
