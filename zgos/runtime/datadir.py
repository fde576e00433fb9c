"""Where a zgos installation keeps its state: one data directory, one subdirectory per process.

Every ``zg`` command resolves the same directory (``--data-dir``, else ``ZGOS_DATA_DIR``, else
``./.zgos/devnet``) and from it finds the devnet's RPC URL, deployment and accounts.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zgos.core.errors import ConfigError
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.ports import CHAIN_PORT

DEFAULT_DATA_DIR = Path(".zgos/devnet")
DATA_DIR_ENV = "ZGOS_DATA_DIR"
RPC_URL_ENV = "ZGOS_RPC_URL"
OUTBOUND_ALLOW_ENV = "ZGOS_OUTBOUND_ALLOW"
DEFAULT_RPC_URL = f"http://127.0.0.1:{CHAIN_PORT}"
LOCK_FILE = ".lock"  # in a service's state directory, held by the process using it
MAX_PID_BYTES = 32


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data directory. Creating the object touches nothing on disk."""

    root: Path

    @classmethod
    def resolve(cls, flag: Path | str | None = None) -> DataDir:
        chosen = flag or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
        return cls(Path(chosen).expanduser().absolute())

    @property
    def deployment(self) -> Path:
        return self.root / "deployment.json"

    @property
    def network(self) -> Path:
        """The devnet's connection facts (RPC URL, chain id), written by ``zg devnet up``."""
        return self.root / "network.json"

    @property
    def keystore(self) -> Path:
        return self.root / "keystore"

    @property
    def token(self) -> Path:
        """The per-install token (0600) that local spending and admin calls must carry
        (``zgos.runtime.access.load_or_create_token``)."""
        return self.root / "token"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def service(self, name: str) -> Path:
        """The private state directory of one service, e.g. ``storage-0``."""
        return self.root / name

    def read_network(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.network.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.network}: {exc}") from None
        return data

    def outbound_policy(self) -> AddressPolicy:
        """Which non-global addresses URLs announced on chain may name: ``ZGOS_OUTBOUND_ALLOW``
        (e.g. ``loopback,private``), else ``outbound_allow`` in network.json (``zg devnet up``
        writes ``loopback``), else none: on a public network a registry entry naming 127.0.0.1
        or 10.0.0.1 is refused instead of called."""
        source, text = OUTBOUND_ALLOW_ENV, os.environ.get(OUTBOUND_ALLOW_ENV)
        if text is None:
            source, text = str(self.network), str((self.read_network() or {}).get("outbound_allow", ""))
        try:
            return AddressPolicy.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def service_url(self, name: str, *, admin: bool = False) -> str | None:
        """The URL the devnet in this data dir gave service ``name`` (network.json's ``services``,
        or ``admin`` for its admin API, written by ``zg devnet up``), or None: commands reach
        their own devnet's services, never a default port another devnet may hold."""
        services = (self.read_network() or {}).get("admin" if admin else "services")
        url = services.get(name) if isinstance(services, dict) else None
        return url if isinstance(url, str) else None

    def devnet_service_url(self, name: str, default: str, flag: str, *, admin: bool = False) -> str:
        """Where a command dials service ``name``: its devnet's URL (``service_url``), and
        ``default`` (the port table's) only when no devnet wrote this data dir's services (no
        network.json, or one written by hand for a chain alone). A devnet that does not run
        ``name`` (``zg devnet up --only``) is an error naming ``flag``, never the default: that
        port may be another devnet's."""
        if "services" not in (self.read_network() or {}):
            return default
        url = self.service_url(name, admin=admin)
        if url is None:
            raise ConfigError(f"the devnet in {self.root} runs no {name}",
                              f"start it with `zg devnet up`, or name its address with {flag}")
        return url

    def rpc_url(self, flag: str | None = None) -> str:
        """The chain RPC URL: ``--rpc-url``, else ``ZGOS_RPC_URL``, else the devnet's, else 8545."""
        if flag:
            return flag
        if env := os.environ.get(RPC_URL_ENV):
            return env
        network = self.read_network()
        if network and network.get("rpc_url"):
            return str(network["rpc_url"])
        return DEFAULT_RPC_URL


class DirectoryClaim:
    """One process's hold on a service's state directory (an exclusive ``flock`` on its
    ``.lock`` file, which names the holder's pid): a second process given the same directory
    (two nodes started with one ``--name``) stops with a ``ConfigError`` instead of sharing the
    store. The kernel drops the hold when the process ends, ``kill -9`` included, so nothing
    stale is left to clean up."""

    def __init__(self, directory: Path, what: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, MAX_PID_BYTES).decode("ascii", "replace").strip() or "?"
            self.release()
            raise ConfigError(f"{directory} is in use by another {what} (pid {holder})",
                              "stop that one first, or give this one another --name") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode("ascii"))

    def release(self) -> None:
        """Let go of the directory (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
