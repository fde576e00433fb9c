"""Launcher for anvil, the local EVM node of the devnet and of the test suite.

Prague hardfork (EIP-2537 BLS12-381 precompiles), interval mining (anvil slows badly when each
transaction gets its own block) and state persisted every ``STATE_INTERVAL_S`` so a devnet
survives both a clean stop and a ``kill -9`` (see shared/reference/libraries.md §Chain).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zgos.chain.networks import DEVNET_ACCOUNTS, DEVNET_BALANCE_0G, DEVNET_CHAIN_ID, DEVNET_MNEMONIC
from zgos.core.errors import ChainError, ConfigError
from zgos.runtime.listen import format_host
from zgos.runtime.netutil import port_in_use, rpc_ready, wait_until
from zgos.runtime.ports import CHAIN_PORT
from zgos.runtime.process import kill, spawn, terminate

ANVIL_ENV = "ZGOS_ANVIL"
REPO_ANVIL = Path(__file__).parents[2] / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
HARDFORK = "prague"
DEFAULT_BLOCK_TIME_S = 1.0
STATE_INTERVAL_S = 1
# Anvil otherwise writes every state beyond its in-memory window to ~/.foundry/anvil/tmp and
# never deletes it after a kill: measured 74 GB in a day of test runs. Blocks and logs stay
# queryable; state (balances, eth_call) is kept for the last IN_MEMORY_STATES blocks.
IN_MEMORY_STATES = 512
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def find_anvil() -> Path:
    """The anvil binary: ``$ZGOS_ANVIL``, else the repo's ``.tools`` copy, else ``PATH``."""
    for candidate in (os.environ.get(ANVIL_ENV), REPO_ANVIL, shutil.which("anvil")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ConfigError("anvil not found", "run `make install` (it installs anvil from npm)")


@dataclass(frozen=True)
class AnvilConfig:
    port: int = CHAIN_PORT
    host: str = "127.0.0.1"
    chain_id: int = DEVNET_CHAIN_ID
    block_time_s: float | None = DEFAULT_BLOCK_TIME_S  # None: a block per transaction (automine)
    state_path: Path | None = None
    accounts: int = DEVNET_ACCOUNTS
    balance_0g: int = DEVNET_BALANCE_0G
    fork_url: str | None = None  # run on a copy of this chain's state (``zg chain deploy --dry-run``)

    @property
    def url(self) -> str:
        return f"http://{format_host(self.host)}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            str(find_anvil()),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--hardfork", HARDFORK,
            "--mnemonic", DEVNET_MNEMONIC,
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_0g),
            "--code-size-limit", str(64 * 1024),
            "--prune-history", str(IN_MEMORY_STATES),
        ]
        if self.block_time_s is not None:
            argv += ["--block-time", f"{self.block_time_s:g}"]
        if self.fork_url is not None:
            argv += ["--fork-url", self.fork_url]
        if self.state_path is not None:
            argv += ["--state", str(self.state_path), "--state-interval", str(STATE_INTERVAL_S)]
        return argv


class Anvil:
    """One anvil process. ``start`` returns once its RPC answers."""

    def __init__(self, config: AnvilConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.config.url

    def start(self) -> None:
        if port_in_use(self.config.port, self.config.host):
            raise ChainError(
                f"port {self.config.port} is already in use",
                "stop whatever listens there (`zg devnet down`?) or choose another port",
            )
        if self.config.state_path is not None:
            self.config.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn(self.config.argv(), self.log_path)
        if not wait_until(lambda: self._alive() and rpc_ready(self.url), READY_TIMEOUT_S):
            self.kill()
            raise ChainError(f"anvil did not become ready on {self.url}", f"see {self.log_path}")

    def _alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (anvil writes its state file), then SIGKILL after ``STOP_TIMEOUT_S``."""
        if self.process is None:
            return
        if self._alive():  # the pid is still this anvil's, not a reused one
            terminate(self.process.pid, STOP_TIMEOUT_S)
        self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: only the periodic state dump survives."""
        if self.process is not None:
            if self._alive():
                kill(self.process.pid)
            self.process.wait()
        self.process = None
