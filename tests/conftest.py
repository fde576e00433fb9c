"""Shared fixtures: one anvil and one deployment per test session (per xdist worker).

Tests get their own freshly funded accounts (``new_account``) so they never contend for the
deployer's nonces, and a data dir (``devnet_dir``) that points ``zg`` at the session chain.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import settings
from xdist.scheduler import LoadScopeScheduling

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_all
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import FREE_PORT_RANGE_ENV, free_port, worker_port_range
from zgos.runtime.process import PidFile, terminate

TEST_BLOCK_TIME_S = 0.2

# Property tests check rules, not speed (speed is bench/'s): no per-example deadline, which a
# loaded 2-core CI machine's scheduling pause once broke (a 0.3 ms example took 298 ms).
settings.register_profile("zgos", deadline=None)
settings.load_profile("zgos")


def pytest_configure(config: pytest.Config) -> None:
    """Each xdist worker (and every process it starts) draws ``free_port``s from its own part of
    the range, so the two workers never take a port between the other's draw and its bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under xdist
    if worker is not None:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ[FREE_PORT_RANGE_ENV] = worker_port_range(int(worker.removeprefix("gw")), count)


@pytest.fixture(scope="session", autouse=True)
def no_devnet_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, stop any devnet service a failed test left running (its
    teardown never ran, or `zg devnet down` did not finish). Test devnets live under this
    worker's base temp dir; their pid files carry the process start time, so only those very
    processes are stopped."""
    yield
    for path in sorted(tmp_path_factory.getbasetemp().glob("**/pids/*.pid")):
        pid = PidFile(path).read_live_pid()
        if pid is not None:
            warnings.warn(f"a test left {path.stem} running ({path}): stopped", stacklevel=1)
            terminate(pid)


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=TEST_BLOCK_TIME_S), log_path=log)
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def chain(anvil: Anvil) -> Chain:
    return Chain(anvil.url)


@pytest.fixture(scope="session")
def deployment_path(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # every network's contract module (blspy...): loaded only by the sessions that deploy
    from zgos.devnet.plan import PLAN

    path = tmp_path_factory.mktemp("deployment") / "deployment.json"
    deploy_all(chain, devnet_role("deployer"), path, PLAN)
    return path


@pytest.fixture(scope="session")
def deployment(deployment_path: Path) -> Deployment:
    return Deployment.from_json(json.loads(deployment_path.read_text()))


@pytest.fixture
def new_account(chain: Chain) -> LocalAccount:
    """A fresh account holding 100 0G, private to one test."""
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=100 * 10**18)
    return account


def session_chain_data_dir(root: Path, chain: Chain, deployment_path: Path) -> DataDir:
    """A new data dir at ``root`` whose network.json and deployment.json describe the session
    chain, so ``zg --data-dir ROOT`` and services started on it use that chain."""
    data_dir = DataDir(root)
    data_dir.root.mkdir(parents=True)
    data_dir.network.write_text(json.dumps({"rpc_url": chain.rpc_url, "chain_id": chain.chain_id,
                                            "outbound_allow": "loopback"}))
    shutil.copy(deployment_path, data_dir.deployment)
    return data_dir


@pytest.fixture
def devnet_dir(tmp_path: Path, chain: Chain, deployment_path: Path) -> DataDir:
    """A data dir on the session chain, private to one test."""
    return session_chain_data_dir(tmp_path / "data", chain, deployment_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``slow`` tests first. Under xdist each worker then starts on a long test while the
    quick ones fill in around it, instead of one worker finishing a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# The tests under each of these paths share one costly fixture, so they run on one xdist worker,
# which builds it once (split across two workers, both would build it).
ONE_WORKER_PATHS = (
    "tests/e2e/",  # the one Gemma fine-tune (~2 min)
    "tests/integration/compute/test_settlement.py",  # a broker and 250 funded users (~30 s)
    "tests/integration/explorer/",  # one explorer process on the session chain
    "tests/adversarial/test_storage_edge.py",  # a storage node and an indexer with files
    "tests/adversarial/test_kv_edge.py",  # a storage node and a KV node
    "tests/integration/kv/test_kv_claims.py",  # ditto
    "tests/integration/inft/",  # one storage node and the oracles (in process, then as processes)
    "tests/integration/alignment/",  # one storage node holding one uploaded file
)


class OneWorkerPerSharedFixture(LoadScopeScheduling):
    """xdist's ``load`` distribution, test by test in collection order as workers free up,
    except that the tests under each of ``ONE_WORKER_PATHS`` form one unit for one worker.
    (xdist's own ``xdist_group`` marks do not group on pytest 9.2: pytest-xdist issue 1386.)"""

    def _split_scope(self, nodeid: str) -> str:
        return next((path for path in ONE_WORKER_PATHS if nodeid.startswith(path)), nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    if config.getvalue("dist") != "load":  # another --dist was asked for: xdist's own
        return None
    return OneWorkerPerSharedFixture(config, log)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses every connection for the whole test: its port is bound and
    never listened on. (A port from ``free_port()`` alone may be taken by the next server a
    parallel test starts, and then something answers.)"""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"
    finally:
        holder.close()
