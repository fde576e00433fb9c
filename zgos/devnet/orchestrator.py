"""``zg devnet``: start, watch and stop devnet services, each as its own OS process.

Order of ``up``: the chain, then the contract deployment (idempotent), then the other groups
asked for (``--only``; all by default), each as soon as the groups it needs are ready, side by
side in threads (``zgos.devnet.schedule``). Within a group the services start in order, each
waited on until its own health signal holds, within one deadline (``netutil.ready_timeout_s``);
``prepare`` hooks (chain transactions from shared devnet accounts) run one at a time. The first
service that fails to start fails ``up``, and the other groups start nothing more. State,
logs (``logs/NAME.log``) and pid files (``pids/NAME.pid``) live under the data dir, so any shell
can see and stop the devnet; the options are saved with it, so ``start``, ``stop``, ``status``
and ``down`` act on what ``up`` started.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

from zgos.chain.devnet import CHAIN_GROUP
from zgos.core.errors import ConfigError, ZgError
from zgos.devnet.schedule import compute_start_needs, run_groups
from zgos.devnet.services import all_services, devnet_services, resolve_groups
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import port_in_use, ready_timeout_s, wait_ready
from zgos.runtime.process import PidFile, is_alive, log_tail, spawn, terminate
from zgos.runtime.service import DevnetContext, DevnetOptions, Service
from zgos.runtime.signals import wait_for_signal

# Every devnet service listens on 127.0.0.1 (or ``--host``), so URLs announced on the devnet may
# name loopback (``CliContext.outbound_policy``), and the class of ``--host`` when it is another
# non-global address (a LAN's); nothing else non-global is allowed.
DEVNET_OUTBOUND_ALLOW = "loopback"


def compute_outbound_allow(host: str) -> str:
    """The devnet's ``outbound_allow``: loopback, plus the address class of ``host`` when its
    services listen on a private or link-local address."""
    import ipaddress

    from zgos.runtime.addresses import ALLOWABLE_CLASSES, compute_address_class

    try:
        kind = compute_address_class(ipaddress.ip_address(host.strip("[]")))
    except ValueError:  # a host name: its address is not known here
        return DEVNET_OUTBOUND_ALLOW
    extra = [kind] if kind in ALLOWABLE_CLASSES and kind != "loopback" else []
    return ",".join([DEVNET_OUTBOUND_ALLOW, *extra])


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    healthy: bool

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "healthy" if self.healthy else "starting/unhealthy"


def _port_of(url: str) -> int | None:
    tail = url.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(tail) if tail.isdigit() else None


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _check_not_stopped(service: Service, stop: threading.Event | None) -> None:
    if _stopped(stop):
        raise ZgError(f"{service.name} not started: another service failed to start")


class Devnet:
    def __init__(self, data_dir: DataDir, options: DevnetOptions | None = None) -> None:
        self.data_dir = data_dir
        self.options = options or self._saved_options() or DevnetOptions()
        self.ctx = DevnetContext(data_dir, self.options)
        # ``prepare`` hooks send transactions from shared devnet accounts (the deployer, the
        # provider...): one at a time, so no two race on a nonce. ``up`` reports progress from
        # every group's thread.
        self._prepare_lock = threading.Lock()
        self._progress_lock = threading.Lock()

    # --- configuration ---------------------------------------------------------------------

    def _saved_options(self) -> DevnetOptions | None:
        network = self.data_dir.read_network()
        if not network or "options" not in network:
            return None
        return DevnetOptions.from_json(network["options"])

    def _save_network(self, chain_id: int) -> None:
        self.data_dir.root.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "rpc_url": self.options.rpc_url,
            "chain_id": chain_id,
            "options": self.options.to_json(),
            "outbound_allow": compute_outbound_allow(self.options.host),
            "services": {service.name: service.url for service in self.services()},
            "admin": {service.name: service.admin_url for service in self.services() if service.admin_url},
        }
        tmp = self.data_dir.network.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(self.data_dir.network)

    def services(self) -> list[Service]:
        """The services of this devnet (the groups it was started with), in table order."""
        return devnet_services(self.options)

    def service(self, name: str) -> Service:
        for service in self.services():
            if service.name == name:
                return service
        names = ", ".join(s.name for s in self.services())
        only = f" (started with --only {','.join(self.options.only)})" if self.options.only else ""
        raise ConfigError(f"no devnet service named {name!r}{only}", f"services: {names}")

    def pidfile(self, name: str) -> PidFile:
        return PidFile(self.data_dir.pids / f"{name}.pid")

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, service: Service, stop: threading.Event | None = None) -> int:
        """Start one service unless it already runs; wait until healthy; return its pid. Once
        ``stop`` is set (another service failed), a service not running yet is not started and
        one starting is stopped (``ZgError``)."""
        pidfile = self.pidfile(service.name)
        if (pid := pidfile.read_live_pid()) is not None:
            return pid
        port = _port_of(service.url)
        if port is not None and port_in_use(port, self.options.host):
            raise ConfigError(
                f"port {port} for {service.name} is already in use by another program",
                "stop it, or run `zg devnet down` if it is an old devnet",
            )
        # Each service's private directory exists before it starts (anvil, for one, silently
        # saves no state when its state file's directory is missing).
        self.data_dir.service(service.name).mkdir(parents=True, exist_ok=True)
        if service.prepare is not None:
            with self._prepare_lock:  # only hooks wait on each other: spawns go on meanwhile
                _check_not_stopped(service, stop)
                service.prepare(self.ctx)
        _check_not_stopped(service, stop)
        pid = spawn(service.argv(self.ctx), self.data_dir.logs / f"{service.name}.log").pid
        pidfile.write(pid)  # at once: `zg devnet down` finds it whatever happens next
        if wait_ready(lambda: service.ready(self.ctx), lambda: is_alive(pid) and not _stopped(stop)):
            return pid
        self._failed(service, pid, stop)

    def _failed(self, service: Service, pid: int, stop: threading.Event | None) -> NoReturn:
        """Stop a service that did not start; raise the error that says why."""
        alive = is_alive(pid)
        terminate(pid)
        self.pidfile(service.name).remove()
        if _stopped(stop):
            raise ZgError(f"{service.name} stopped while starting: another service failed to start")
        log_path = self.data_dir.logs / f"{service.name}.log"
        why = f"did not become healthy in {ready_timeout_s():g} s" if alive else "exited during start-up"
        raise ZgError(f"{service.name} {why}",
                      f"the end of its log ({log_path}):\n{log_tail(log_path)}")

    def _healthy(self, service: Service) -> bool:
        try:
            return bool(service.ready(self.ctx))
        except Exception:
            return False

    def stop(self, name: str) -> bool:
        """Stop one service; return False if it was not running."""
        pidfile = self.pidfile(name)
        pid = pidfile.read_live_pid()
        if pid is None:
            return False
        terminate(pid)
        pidfile.remove()
        return True

    def up(self, progress: Any = None) -> list[ServiceStatus]:
        """Start this devnet's services (idempotent: running services are kept): the chain and
        the contracts first, then each group once the groups it needs are ready (see the module
        docstring). Raises the first service's start-up failure."""
        self.data_dir.root.mkdir(parents=True, exist_ok=True)
        plan = resolve_groups(self.options.only)  # the chain's group among them
        self._start_group(CHAIN_GROUP.services(self.options), progress)
        self._deploy(progress)
        by_name = {group.name: group for group in plan}
        run_groups(compute_start_needs(plan),
                   lambda name, stop: self._start_group(by_name[name].services(self.options), progress, stop),
                   ready=[CHAIN_GROUP.name])
        return self.status()

    def _start_group(self, services: list[Service], progress: Any = None,
                     stop: threading.Event | None = None) -> None:
        """Start a group's services in order, each once the one before is ready."""
        for service in services:
            _check_not_stopped(service, stop)
            if progress:
                with self._progress_lock:
                    progress(f"starting {service.name}")
            self.start(service, stop)

    def _deploy(self, progress: Any = None) -> None:
        """Record the network (the chain is up) and deploy every contract (idempotent)."""
        # web3 and every network's contract module (numpy, blspy...): `status` and `down` skip them
        from zgos.chain.client import Chain
        from zgos.devnet.plan import deploy_contracts

        chain = Chain(self.options.rpc_url)
        self._save_network(chain.chain_id)
        if progress:
            with self._progress_lock:
                progress("deploying contracts")
        deploy_contracts(chain, self.data_dir.deployment)

    def down(self) -> list[str]:
        """Stop every running service, last started first; return their names.

        Services left by an earlier ``up`` with other options (another ``--only``, more
        storage nodes) are stopped too: every live pid file counts."""
        stopped = []
        for service in reversed(all_services(self.options)):
            if self.stop(service.name):
                stopped.append(service.name)
        for pidfile in sorted(self.data_dir.pids.glob("*.pid")):
            if self.stop(pidfile.stem):
                stopped.append(pidfile.stem)
        return stopped

    def reset(self) -> None:
        self.down()
        if self.data_dir.root.exists():
            shutil.rmtree(self.data_dir.root)

    def status(self) -> list[ServiceStatus]:
        result = []
        for service in self.services():
            pid = self.pidfile(service.name).read_live_pid()
            healthy = pid is not None and self._healthy(service)
            result.append(ServiceStatus(service.name, service.url, pid, healthy))
        return result

    def watch(self) -> None:
        """Block until SIGINT/SIGTERM, then stop everything (``make up`` runs in the foreground)."""
        try:
            wait_for_signal()
        finally:
            self.down()
