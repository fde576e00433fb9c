"""Compute fixtures: one real llama.cpp model server per session, real broker processes, and
users with funded, acknowledged sub-accounts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.servers import await_ready
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.model import DEFAULT_MODEL_ID, ensure_gemma, model_hash, model_server_argv
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.limits import SpendCaps
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.compute.user.proxy import Funding, UserProxy, proxy_server
from zgos.compute.user.router import Router
from zgos.runtime.access import read_token
from zgos.runtime.addresses import DEVNET_POLICY, AddressPolicy
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port
from zgos.runtime.process import log_tail

PRICES = Prices(input_price=1_000, output_price=3_000)


@pytest.fixture(scope="session")
def gguf() -> Path:
    """The Gemma GGUF from the machine's model cache (assembled once, under a file lock)."""
    path = ensure_gemma()
    model_hash(path)
    return path


@pytest.fixture(scope="session")
def tokens(gguf: Path) -> TokenCounter:
    return TokenCounter(gguf)


@pytest.fixture(scope="session")
def model_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("model") / "model.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(model_server_argv(gguf, port=port, threads=1), stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            await_ready(lambda: httpx.get(url + "/v1/models", timeout=1).status_code == 200, "the model server",
                        log_path, process)
            yield url
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="session")
def stub_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The benchmark's instant stub model server (``bench.compute_servers``): a fixed answer, or
    a stream of one chunk per token every few milliseconds that stops when its client leaves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("stub") / "stub.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bench.compute_servers", "stub", str(port)],
                                   cwd=Path(__file__).resolve().parents[3], stdout=log, stderr=subprocess.STDOUT)
        await_ready(lambda: httpx.get(url + "/v1/models", timeout=1).status_code == 200, "the stub upstream",
                    log_path, process)
        yield url
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def compute(chain: Chain, deployment: Deployment) -> ComputeContracts:
    return ComputeContracts.from_deployment(chain, deployment)


def funded_account(chain: Chain, amount: int = 10 * 10**18) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=amount)
    return account


@dataclass
class BrokerProcess:
    provider: LocalAccount
    url: str
    admin_url: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    data_dir: DataDir
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_headers(self) -> dict[str, str]:
        """The install token the broker created in its data dir, as its admin API wants it."""
        return {"authorization": f"Bearer {read_token(self.data_dir.token)}"}

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            await_ready(lambda: httpx.get(self.url + "/health", timeout=1).status_code == 200, "the broker",
                        self.log_path, self.process)
        except BaseException:  # never leave a broker behind that the session teardown does not know of
            self.kill()
            raise

    def log_tail(self) -> str:
        """The broker's last log lines, for a failing assertion to explain itself."""
        return log_tail(self.log_path)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(15)

    def status(self) -> dict[str, object]:
        return dict(httpx.get(self.admin_url + "/v1/status", headers=self.admin_headers, timeout=30).json())

    def user(self, address: str) -> dict[str, int]:
        answer = httpx.get(f"{self.admin_url}/v1/user/{address}", headers=self.admin_headers, timeout=30)
        if answer.status_code == 404:
            return {"served": 0, "receipted": 0, "inflight": 0, "requests": 0}
        return {k: val for k, val in answer.json().items() if k != "user"}

    def settle(self) -> dict[str, object]:
        return dict(httpx.post(self.admin_url + "/v1/settle", headers=self.admin_headers, timeout=60).json())


@pytest.fixture(scope="session")
def start_broker(
    chain: Chain, compute: ComputeContracts, deployment_path: Path, gguf: Path,
    tmp_path_factory: pytest.TempPathFactory, anvil: object,
) -> Iterator[Callable[..., BrokerProcess]]:
    """Start a broker for a fresh, registered provider: ``start_broker(upstream, *flags)``."""
    started: list[BrokerProcess] = []
    digest = model_hash(gguf)

    def start(upstream: str, *flags: str, env: dict[str, str] | None = None, prices: Prices = PRICES
              ) -> BrokerProcess:
        provider = funded_account(chain)
        port, admin_port = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        compute.register(provider, url=url, model=DEFAULT_MODEL_ID, model_hash=digest, prices=prices,
                         signer=provider.address)
        home = tmp_path_factory.mktemp("broker")
        data_dir = DataDir(home / "data")
        data_dir.root.mkdir()
        data_dir.network.write_text(f'{{"rpc_url": "{chain.rpc_url}", "chain_id": {chain.chain_id}}}')
        data_dir.deployment.write_text(deployment_path.read_text())
        base = {k: val for k, val in os.environ.items() if not k.startswith("ZGOS_")}
        broker = BrokerProcess(
            provider=provider, url=url, admin_url=f"http://127.0.0.1:{admin_port}",
            argv=[sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "compute", "provider",
                  "serve", "--upstream", upstream, "--port", str(port), "--admin-port", str(admin_port),
                  "--model-path", str(gguf), *flags],
            env={**base, "ZGOS_PRIVATE_KEY": provider.key.hex(), **(env or {})},
            log_path=home / "broker.log", data_dir=data_dir,
        )
        started.append(broker)  # stopped at the end even if it never becomes healthy
        broker.start()
        return broker

    yield start
    for broker in started:
        if broker.process is not None and broker.process.poll() is None:
            broker.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def broker(start_broker: Callable[..., BrokerProcess], model_server: str) -> BrokerProcess:
    """The session's honest broker in front of the real model server."""
    return start_broker(model_server, "--settle-interval", "3600")


@pytest.fixture
def make_user(chain: Chain, compute: ComputeContracts, tokens: TokenCounter, tmp_path: Path
              ) -> Callable[..., ComputeUser]:
    """A user with ``fund`` neuron in a sub-account with ``provider`` (acknowledged unless told)."""
    def make(provider: str | None = None, fund: int = 10**15, acknowledge: bool = True) -> ComputeUser:
        account = funded_account(chain)
        user = ComputeUser(compute, account, tmp_path / account.address, tokens=tokens)
        if provider is not None and fund:
            compute.deposit_and_fund(account, provider, fund)
            if acknowledge:
                user.acknowledge(compute.service(provider))
        return user
    return make


@dataclass
class RunningProxy:
    url: str
    proxy: UserProxy
    token: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def run_proxy() -> Iterator[Callable[..., RunningProxy]]:
    """Serve a ``UserProxy`` behind its guarded edge (``proxy_server``) on a free port in a
    background thread: ``run_proxy(user, providers, funding, max_price=..., caps=..., timeout_s=...)``."""
    running: list[RunningProxy] = []

    def run(user: ComputeUser, providers: list[str] | None = None, funding: Funding | None = None, *,
            max_price: int | None = None, caps: SpendCaps = SpendCaps(), timeout_s: float = 120.0,
            origins: tuple[str, ...] = (), address_policy: AddressPolicy = DEVNET_POLICY) -> RunningProxy:
        proxy = UserProxy(user, Router(user, providers, max_price), funding, timeout_s=timeout_s, caps=caps,
                          address_policy=address_policy)
        port = free_port()
        token = "test-token-" + user.address
        server = proxy_server(proxy, host="127.0.0.1", port=port, token=token, origins=origins)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        headers = {"authorization": f"Bearer {token}"}
        running.append(RunningProxy(url, proxy, token, server, thread))
        await_ready(lambda: httpx.get(url + "/v1/models", headers=headers, timeout=5).status_code == 200,
                    "the user proxy")
        return running[-1]

    yield run
    for proxy in running:
        proxy.stop()
