"""Tour steps 4 to 6: chat through the local OpenAI proxy, verify the answer, walk its lineage.

Step 4 serves a :class:`~zgos.compute.user.proxy.UserProxy` on a free local port for the
length of the step (a throwaway install token, the same funding rules as ``zg compute serve``)
and asks the tuned model of step 3 one question with the stock ``openai`` client. Without a
tuned model (steps 2 and 3 not run, or a devnet without the fine-tuning provider) it asks the
devnet's base model instead, and says so. Step 5 re-checks the provider's signature on that
answer; step 6 walks its provenance and, for a tuned model, finds step 1's dataset in it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from zgos.core.errors import ConfigError, ZgError
from zgos.core.units import parse_amount
from zgos.tour.state import Tour

if TYPE_CHECKING:
    from zgos.cli.context import CliContext
    from zgos.compute.contracts import ServiceInfo
    from zgos.compute.user.client import ComputeUser

PROMPT = "What is zgos?"  # the first question of the tour's dataset: the tuned model has seen it
MAX_ANSWER_TOKENS = 32
SHOWN_ANSWER_CHARS = 200  # the answer on one line
CHAT_TIMEOUT_S = 120.0
PROXY_READY_S = 30.0
# As `zg compute serve`'s defaults: top up 1 0G at a time, at most 10 0G per sub-account and per day.
TOP_UP, MAX_BALANCE, MAX_TOP_UP_PER_DAY = parse_amount("1"), parse_amount("10"), parse_amount("10")


@contextlib.contextmanager
def local_proxy(cli: CliContext, user: ComputeUser) -> Iterator[tuple[str, str]]:
    """``zg compute serve``'s proxy for ``user`` on a free 127.0.0.1 port in a background thread,
    with a throwaway token: yields (base URL for the openai client, token), stops it after."""
    import httpx

    from zgos.compute.cli import _standings
    from zgos.compute.user.proxy import Funding, UserProxy, proxy_server
    from zgos.compute.user.router import Router
    from zgos.runtime.netutil import free_port, wait_until

    funding = Funding(TOP_UP, MAX_BALANCE, MAX_TOP_UP_PER_DAY)
    proxy = UserProxy(user, Router(user, None, None, _standings(cli)), funding, timeout_s=CHAT_TIMEOUT_S,
                      address_policy=cli.outbound_policy())
    port, token = free_port(), secrets.token_urlsafe(24)
    server = proxy_server(proxy, host="127.0.0.1", port=port, token=token)
    thread = threading.Thread(target=server.run, name="tour-proxy", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        if not wait_until(lambda: server.started, PROXY_READY_S):
            raise ZgError("the local proxy did not start")
        httpx.get(url + "/models", headers={"authorization": f"Bearer {token}"}, timeout=PROXY_READY_S)
        yield url, token
    finally:
        server.should_exit = True
        thread.join(PROXY_READY_S)


def chat_model(tour: Tour, services: list[ServiceInfo]) -> tuple[ServiceInfo, bool]:
    """The service to ask: step 3's tuned model, else the devnet's base model (with a note)."""
    from zgos.compute.model import GEMMA_ROOT

    name = tour.state.get("served_model")
    tuned = [s for s in services if name is not None and s.model == name]
    if tuned:
        return tuned[0], True
    base = [s for s in services if s.model_hash == GEMMA_ROOT] or services
    if not base:
        raise ConfigError("no inference provider is registered", "start the devnet: `zg devnet up`")
    tour.guide.note("no tuned model is served yet (run steps 2 and 3 for one): asking the devnet's base model "
                    f"{base[0].model} instead, whose lineage ends at its model file, not at the dataset")
    return base[0], False


def chat(tour: Tour) -> None:
    import openai

    from zgos.compute.cli import _user
    from zgos.compute.cli.common import _contracts
    from zgos.compute.provider.wire import HEADER_RESPONSE_ID

    tour.guide.proves("The stock openai client talks to the decentralized network unchanged: a local proxy signs "
                      "and pays for each request and checks the provider's signature before it pays.")
    services = _contracts(tour.cli).services()
    service, tuned = chat_model(tour, services)
    user = _user(tour.cli, None, services)
    user.acknowledge(service)
    with local_proxy(tour.cli, user) as (url, token), tour.guide.console.status(f"asking {service.model}"):
        client = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=CHAT_TIMEOUT_S)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=service.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_ANSWER_TOKENS,
                temperature=0)
        except openai.APIError as exc:
            raise ZgError(f"the proxy refused the chat: {exc}", "see `zg compute ledger` and the provider's log") from None
    answer, response_id = raw.parse(), raw.headers.get(HEADER_RESPONSE_ID)
    if not response_id:
        raise ZgError("the proxy answered without a response id")
    text = " ".join((answer.choices[0].message.content or "").split())[:SHOWN_ANSWER_CHARS] or "(an empty answer)"
    tour.guide.console.print(f"  you: {PROMPT}\n  {service.model}: {text}", highlight=False, markup=False)
    tour.guide.ok(f"answered by {service.provider}, signature checked by the proxy; response id {response_id}")
    tour.state.forget(*tour.derived_from(4))
    tour.state.update(response_id=response_id, response_model=service.model, response_tuned=tuned)
    tour.guide.link(f"response/{response_id}")


def verify(tour: Tour) -> None:
    from zgos.compute.cli import _user

    response_id = tour.state.need("response_id")
    tour.guide.proves("Anyone holding the answer can check later, against the chain, that the registered provider "
                      "signed exactly this answer to exactly this request, for this model.")
    result = _user(tour.cli, None).verify_stored(response_id)
    if not (result["signature_valid"] and result["matches_local_record"]):
        raise ZgError(f"response {response_id} does not verify: {result}")
    tour.guide.ok(f"signature by {result['signer']}, the signer {result['provider']} registered, is valid "
                  f"for model {result['model']} (fee {result['fee']} neuron, tokens {result['usage']})")
    tour.guide.ok("the provider's signed record matches the answer recorded when it arrived")
    tour.guide.link(f"response/{response_id}")


def provenance(tour: Tour) -> None:
    from zgos.provenance.cli import render
    from zgos.provenance.graph import Provenance

    response_id = tour.state.need("response_id")
    tour.guide.proves("Every answer traces back, from chain events alone, to the model that gave it, the task "
                      "that trained it, the dataset it learnt from and who uploaded that dataset.")
    cli = tour.cli
    node = Provenance(cli.chain(), cli.deployment(), [cli.data_dir.service("compute-user")], policy=cli.outbound_policy()).show(response_id)
    tour.guide.console.print(render(node))
    ids = {n.id.lower() for n in node.walk()}
    checks = [c for n in node.walk() for c in n.checks]
    tour.guide.ok(f"{sum(c.ok is True for c in checks)} of {len(checks)} checks verified")
    if tour.state.get("response_tuned"):
        root = tour.state.need("dataset_root")
        if root.lower() not in ids:
            raise ZgError(f"the lineage of {response_id} does not reach step 1's dataset {root}")
        tour.guide.ok(f"the walk reaches step 1's dataset {root}")
    else:
        tour.guide.note("the answer came from the base model: its lineage ends at the model file and its uploader")
    tour.guide.link(f"response/{response_id}")
