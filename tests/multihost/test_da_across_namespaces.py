"""DA certification and inference across hosts (issue 19 §3), in one lab (``conftest.network``:
the chain on its own host).

DA: four DA signers on two hosts register the addresses they were told (``--host``), a disperser
on the client host reaches them only through those registered addresses, and a blob it
certifies is read back by the client from the signers, again through the chain's records.

Inference with router failover: a provider on each of two hosts, registered under an unreachable
URL, announces its own (``--public-url``) when its broker starts; the client host's proxy (``zg
compute serve``: the router) finds both only on chain, is answered by the cheaper one, and keeps
answering through the other once the cheaper one's host drops off the network (its link down).
The model servers are the benchmark's stub (``bench.compute_servers``): the router, the brokers
and the payments are what is under test, not the model."""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvicorn

from bench.compute_servers import stub_app
from tests.multihost.conftest import Network, zg
from tests.multihost.netns import Lab, connected_hosts, zg_env
from zgos.chain.accounts import devnet_account
from zgos.chain.client import Chain
from zgos.chain.deploy import load_deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import DEFAULT_MODEL_ID, GEMMA_ROOT
from zgos.compute.spec.billing import Prices
from zgos.da.contracts import DAContracts
from zgos.runtime.access import read_token
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import port_in_use, wait_until
from zgos.runtime.ports import (
    DA_DISPERSER_PORT,
    DA_SIGNER_PORT,
    MODEL_PORT,
    PROVIDER_PORT,
    USER_PROXY_PORT,
)

SIGNERS = {"s1": (0, 1), "s2": (2, 3)}  # host -> signer indexes (port 34000 + i, devnet account 10 + i)
READY_S = 120.0
# host -> (devnet account, prices): s1 is cheaper, so the router's first choice
PROVIDERS = {"s1": (15, Prices(1_000, 3_000)), "s2": (16, Prices(2_000, 6_000))}
USER_ACCOUNT = 19  # devnet account of the client host's proxy
UNANNOUNCED_URL = "http://192.0.2.1:3080"  # TEST-NET-1 (RFC 5737): reaches no one until a broker announces
USER_FUNDS = 10**18  # neuron in each sub-account: far more than a few chats cost
PROXY_TIMEOUT_S = 5.0  # a provider call's total deadline: what a call to a host that went down costs at most


def test_a_blob_is_certified_by_signers_on_other_hosts_and_read_back_through_their_registered_addresses(
    network: Network, tmp_path: Path,
) -> None:
    lab, chain_flags = network.lab, ("--rpc-url", network.rpc, "--deployment", str(network.deployment))
    listening = []
    for host, indexes in SIGNERS.items():
        for i in indexes:
            lab.spawn(host, zg(tmp_path / host, "da", "signer", "--index", str(i), "--host", lab[host].address,
                               *chain_flags), tmp_path / f"signer-{i}.log", env=zg_env())
            listening.append((lab[host].address, DA_SIGNER_PORT + i))
    client, address = tmp_path / "client", lab["client"].address
    lab.spawn("client", zg(client, "da", "disperser", "--host", address, "--workers", "0", *chain_flags),
              tmp_path / "disperser.log", env=zg_env(ZGOS_OUTBOUND_ALLOW="private"))  # signers announce private addresses
    listening.append((address, DA_DISPERSER_PORT))
    for host_address, port in listening:
        assert wait_until(lambda h=host_address, p=port: lab.run_on("client", lambda: port_in_use(p, h)), READY_S), \
            f"{host_address}:{port} listens: {_logs(tmp_path)}"

    assert wait_until(lambda: lab.run_on("client", lambda: quorum_size(network)) == 4, READY_S), \
        "an epoch's quorum holds the signers of both hosts"

    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 300)
    put = lab.run("client", zg(client, "da", "put", str(blob), "--disperser", f"{address}:{DA_DISPERSER_PORT}",
                               "--timeout", "120"), env=zg_env())
    assert put.returncode == 0, f"{put.stderr}\n{_logs(tmp_path)}"
    blob_id = re.search(r"blob (0x[0-9a-f]{64}) (CONFIRMED|FINALIZED)", put.stdout)
    assert blob_id is not None, put.stdout
    out = tmp_path / "out.bin"
    get = zg(client, "da", "get", blob_id.group(1), str(out), *chain_flags)
    refused = lab.run("client", get, env=zg_env())  # signers on private addresses: a stranger's claim until allowed
    assert refused.returncode != 0 and "private address" in refused.stderr, refused.stderr
    got = lab.run("client", get, env=zg_env(ZGOS_OUTBOUND_ALLOW="private"))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == blob.read_bytes()
    hosts = connected_hosts(sorted(tmp_path.glob("*.log")))
    assert {lab["s1"].address, lab["s2"].address} <= set(hosts), "the disperser dialled the signers' hosts"
    assert all(host in lab.addresses() for host in hosts), f"no process dialled a loopback address: {hosts}"


def quorum_size(network: Network) -> int:
    """Members of the current epoch's quorum, read from the chain."""
    chain = Chain(network.rpc)
    da = DAContracts.from_addresses(chain, load_deployment(network.deployment).addresses)
    return len(da.quorum(da.current_epoch()).members)


def _logs(work: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in sorted(work.glob("*.log")))


def test_inference_through_the_router_fails_over_to_the_other_provider_when_a_provider_host_goes_down(
    network: Network, tmp_path: Path,
) -> None:
    lab, chain_flags = network.lab, ("--rpc-url", network.rpc, "--deployment", str(network.deployment))
    with ThreadPoolExecutor() as pool:  # each provider registers from its own host, under a URL that reaches no one
        list(pool.map(lambda host: lab.run_on(host, lambda: register(network, *PROVIDERS[host])), PROVIDERS))
    with stub_models(lab):
        urls = [start_provider(lab, host, tmp_path, chain_flags) for host in PROVIDERS]
        client = tmp_path / "client"
        lab.spawn("client", zg(client, "compute", "serve", "--account", f"devnet:{USER_ACCOUNT}", "--timeout",
                               f"{PROXY_TIMEOUT_S:g}", *chain_flags), tmp_path / "proxy.log",
                  env=zg_env(ZGOS_OUTBOUND_ALLOW="private"))
        lab.run_on("client", lambda: fund_user(network))  # while the services start
        for url in [*urls, f"http://127.0.0.1:{USER_PROXY_PORT}"]:  # a broker serves once it announced its URL
            assert wait_until(functools.partial(listens, lab, url), READY_S), f"{url} listens: {_logs(tmp_path)}"
        token = read_token(DataDir(client).token)
        providers = {devnet_account(PROVIDERS[host][0]).address.lower(): host for host in PROVIDERS}

        assert providers[chat(lab, token)] == "s1", "the router chose the cheaper provider, found on chain"
        lab.link("s1", up=False)  # s1's host drops off the network, keep-alive connections and all
        try:
            failed_over = providers[chat(lab, token)]  # s1 first, which does not answer; then s2
            started = time.monotonic()
            next_one = providers[chat(lab, token)]
            next_s = time.monotonic() - started
        finally:
            lab.link("s1", up=True)
    assert (failed_over, next_one) == ("s2", "s2"), _logs(tmp_path)
    assert next_s < PROXY_TIMEOUT_S, f"the router went straight to s2 once s1 had failed ({next_s:.1f} s)"
    hosts = connected_hosts([tmp_path / name for name in ("proxy.log", "provider-s1.log", "provider-s2.log")])
    assert {lab["chain"].address, lab["s1"].address, lab["s2"].address} <= set(hosts), \
        f"the proxy dialled both providers' announced URLs: {hosts}"
    assert set(hosts) <= lab.addresses(), f"no process dialled a loopback address: {hosts}"


@contextlib.contextmanager
def stub_models(lab: Lab) -> Iterator[None]:
    """The benchmark's stub model server on each provider host's address, run by the test in a
    thread on that host (a process less to start on each)."""
    servers = [uvicorn.Server(uvicorn.Config(stub_app(), host=lab[host].address, port=MODEL_PORT,
                                             log_level="warning", access_log=False)) for host in PROVIDERS]
    for host, server in zip(PROVIDERS, servers, strict=True):
        lab.start_on(host, server.run)
    try:
        yield
    finally:
        for server in servers:
            server.should_exit = True


def start_provider(lab: Lab, host: str, work: Path, chain_flags: tuple[str, ...]) -> str:
    """On ``host``: start the registered provider's broker in front of its stub model server;
    it announces ``--public-url`` before it serves. That URL."""
    address, index = lab[host].address, PROVIDERS[host][0]
    url = f"http://{address}:{PROVIDER_PORT}"
    lab.spawn(host, zg(work / host, "compute", "provider", "serve", "--upstream", f"http://{address}:{MODEL_PORT}",
                       "--host", address, "--public-url", url, "--account", f"devnet:{index}", *chain_flags),
              work / f"provider-{host}.log", env=zg_env())
    return url


def register(network: Network, index: int, prices: Prices) -> None:
    """Register devnet account ``index`` as a provider of the default model at ``UNANNOUNCED_URL``."""
    provider = devnet_account(index)
    compute = ComputeContracts.from_deployment(Chain(network.rpc), load_deployment(network.deployment))
    compute.register(provider, url=UNANNOUNCED_URL, model=DEFAULT_MODEL_ID, model_hash=GEMMA_ROOT, prices=prices,
                     signer=provider.address)


def fund_user(network: Network) -> None:
    """The user's sub-account with each provider funded and its signer acknowledged (what
    ``zg compute fund`` does), so no chat waits for those transactions."""
    user = devnet_account(USER_ACCOUNT)
    compute = ComputeContracts.from_deployment(Chain(network.rpc), load_deployment(network.deployment))
    for index, _ in PROVIDERS.values():
        provider = devnet_account(index).address
        compute.deposit_and_fund(user, provider, USER_FUNDS)
        compute.acknowledge(user, provider, provider)


def listens(lab: Lab, url: str) -> bool:
    """Whether something listens at ``url``, asked from the client host."""
    parts = urlsplit(url)
    return lab.run_on("client", lambda: port_in_use(parts.port or 80, parts.hostname or ""))


def chat(lab: Lab, token: str) -> str:
    """One chat through the client host's proxy; the provider that answered it."""
    def ask() -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{USER_PROXY_PORT}/v1/chat/completions", timeout=60,
                          headers={"authorization": f"Bearer {token}"},
                          json={"model": DEFAULT_MODEL_ID, "max_tokens": 8,
                                "messages": [{"role": "user", "content": "The capital of France?"}]})
    answer = lab.run_on("client", ask)
    assert answer.status_code == 200, answer.text
    return answer.headers["zg-provider"].lower()
