"""The fine-tuning provider process (``zg compute provider serve --finetune``).

Three parts, wired by :func:`zgos.compute.finetune.app.run_provider`:

- the :class:`~zgos.compute.finetune.worker.FineTuningWorker` in a thread, polling the chain
  every ``poll_s`` (an idle worker costs one ``eth_blockNumber`` + one ``eth_getLogs`` per
  poll; torch and the base model load only when the first task arrives);
- a small HTTP API (FastAPI) on the service URL registered in ``FineTuningServing``:
  ``GET /health``, ``GET /v1/finetune/tasks/{id}`` (state, step, total steps, loss, error:
  what ``zg finetune status`` draws) and ``GET /v1/finetune/served`` (the tuned model on offer),
  read-only and public, behind the guarded edge (``API_POLICY``: small JSON bodies, a deadline);
- :class:`TunedModelHost`, which serves the newest settled, acknowledged tuned model: a
  llama.cpp server with the GGUF LoRA loaded (``--lora_path``) behind an inference broker
  registered in ``InferenceServing`` as its own model (name ``<base>-ft<task>``, hash = the
  tuned model id ``ModelRegistry`` derives from the task,
  :func:`zgos.compute.spec.tasks.compute_tuned_model_id`). Both run as
  child processes that die with this one; the broker shares this process's data dir, so its
  admin API takes the same install token.

Restart behaviour: the worker resumes from its journal; the host re-serves the newest tuned
model found in the journal.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from zgos.compute.contracts import ComputeContracts, ServiceTerms
from zgos.compute.finetune.contracts import FineTuningMarket, OnchainStatus
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.storage import StorageBlobStore
from zgos.compute.finetune.wire import ProviderHealth, Served, ServedModel, TaskProgress
from zgos.compute.finetune.worker import (
    ADAPTER_DIRNAME,
    GGUF_LORA_FILENAME,
    BaseModel,
    FineTuningWorker,
)
from zgos.compute.model import DEFAULT_CHAT_FORMAT, model_server_argv
from zgos.compute.provider.wire import ErrorBody
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.tasks import TaskState, compute_tuned_model_id
from zgos.core.errors import ZgError
from zgos.runtime.edge import EdgePolicy, Route
from zgos.runtime.jsonrpc import MAX_INT64
from zgos.runtime.netutil import http_ok, wait_until
from zgos.runtime.process import spawn, terminate_all
from zgos.runtime.serve import hardened_server, serve_in_foreground

log = logging.getLogger(__name__)

HOST_POLL_S = 3.0
CHILD_READY_TIMEOUT_S = 120.0
CHILD_STOP_TIMEOUT_S = 10.0
TUNED_SUFFIX = "-ft"
API_POLICY = EdgePolicy(routes=(Route("/", max_body_bytes=1024, deadline_s=30.0),))  # GETs only


@dataclass(frozen=True)
class TunedModel:
    task_id: int
    name: str
    model_id: bytes
    base: BaseModel
    adapter_gguf: Path


@dataclass
class TunedServingConfig:
    """Where the tuned model is served and how the broker child is started."""

    model_port: int
    broker_port: int
    admin_port: int
    prices: Prices
    zg_argv: list[str]  # argv prefix running ``zg`` with this process's global options
    account_spec: str | None  # None: the child signs with ZGOS_PRIVATE_KEY, as this process does
    base_name: str
    host: str = "127.0.0.1"
    public_host: str = "127.0.0.1"
    threads: int = 1


@dataclass
class TunedModelHost:
    """Keeps the newest settled tuned model served (see the module docstring)."""

    config: TunedServingConfig
    contracts: ComputeContracts
    market: FineTuningMarket
    provider: LocalAccount
    journal_path: Path
    work_dir: Path
    base_models: dict[bytes, BaseModel]
    log_dir: Path
    serving: TunedModel | None = None
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        return f"http://{self.config.public_host}:{self.config.broker_port}"

    def newest(self) -> TunedModel | None:
        """The newest Finished task that was acknowledged and whose adapter llama.cpp can load."""
        with Journal(self.journal_path) as journal:
            finished = journal.task_ids({TaskState.FINISHED})
        for task_id in reversed(finished):
            adapter_dir = self.work_dir / f"task-{task_id}" / ADAPTER_DIRNAME
            gguf = adapter_dir / GGUF_LORA_FILENAME
            if not gguf.is_file():
                continue
            task = self.market.get_task(task_id)
            base = self.base_models.get(task.base_model)
            if task.status != OnchainStatus.SETTLED or not task.sealed_key or base is None:
                continue
            model_id = compute_tuned_model_id(self.market.chain.chain_id, self.market.domain.verifying_contract,
                                              task_id, task.base_model, task.result_root)
            return TunedModel(task_id, f"{self.config.base_name}{TUNED_SUFFIX}{task_id}", model_id, base, gguf)
        return None

    def poll(self) -> None:
        tuned = self.newest()
        if tuned is None or (self.serving is not None and self.serving.model_id == tuned.model_id
                             and all(c.poll() is None for c in self._children)):
            return
        self.serve(tuned)

    def serve(self, tuned: TunedModel) -> None:
        self.stop()
        self.contracts.ensure_service(self.provider, ServiceTerms(  # the tuned model's inference service
            self.broker_url, tuned.name, tuned.model_id, self.config.prices, self.provider.address))
        assert tuned.base.base_gguf is not None
        model_url = f"http://127.0.0.1:{self.config.model_port}"
        argv = model_server_argv(tuned.base.base_gguf, port=self.config.model_port, model_id=tuned.name,
                                 chat_format=DEFAULT_CHAT_FORMAT, threads=self.config.threads)
        self._spawn("tuned-model", [*argv, "--lora_path", str(tuned.adapter_gguf)])
        if not wait_until(lambda: http_ok(model_url + "/v1/models"), CHILD_READY_TIMEOUT_S):
            raise ZgError(f"the tuned model server did not start (log in {self.log_dir})")
        self._spawn("tuned-broker", [
            *self.config.zg_argv, "compute", "provider", "serve", "--upstream", model_url,
            "--host", self.config.host, "--port", str(self.config.broker_port),
            "--admin-port", str(self.config.admin_port), "--model", tuned.name,
            "--model-path", str(tuned.base.base_gguf), "--model-hash", "0x" + tuned.model_id.hex(),
            *(["--account", self.config.account_spec] if self.config.account_spec else []),
        ])
        if not wait_until(lambda: http_ok(self.broker_url + "/health"), CHILD_READY_TIMEOUT_S):
            raise ZgError(f"the tuned model's broker did not start (log in {self.log_dir})")
        self.serving = tuned
        log.info("serving %s (0x%s) at %s", tuned.name, tuned.model_id.hex(), self.broker_url)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._children.append(spawn(argv, self.log_dir / f"{name}.log"))

    def stop(self) -> None:
        terminate_all([child.pid for child in self._children if child.poll() is None], CHILD_STOP_TIMEOUT_S)
        for child in self._children:
            child.wait()
        self._children.clear()
        self.serving = None


def task_view(journal: Journal, task_id: int) -> TaskProgress | None:
    """What the provider tells anyone about a task's progress (advisory; the chain is the truth)."""
    try:
        record = journal.get(task_id)
    except KeyError:
        return None
    return TaskProgress(
        task_id=task_id, state=record.state.value, step=record.step, total_steps=record.total_steps,
        loss=record.loss, losses=journal.losses(task_id), tokens=record.tokens, error=record.error,
        result_root="0x" + record.result_root.hex() if record.result_root else None,
    )


def create_app(journal_path: Path, host_of: Callable[[], TunedModelHost | None], provider: str,
               ready: Callable[[], bool]) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="zgos fine-tuning provider")
    journal = Journal(journal_path)
    lock = threading.Lock()

    @app.get("/health")
    def health() -> ProviderHealth:
        return ProviderHealth(provider=provider, ready=ready())

    @app.get("/v1/finetune/tasks/{task_id}", response_model=TaskProgress)
    def task(task_id: int) -> Any:
        with lock:  # ids past SQLite's INTEGER exist nowhere (and would not bind)
            view = task_view(journal, task_id) if 0 <= task_id <= MAX_INT64 else None
        if view is None:
            error = ErrorBody.of(404, "unknown-task", f"task {task_id} is not known to this provider (yet)")
            return JSONResponse(error.model_dump(), status_code=404)
        return view

    @app.get("/v1/finetune/served")
    def served() -> Served:
        host = host_of()
        tuned = host.serving if host is not None else None
        if tuned is None:
            return Served(serving=None)
        return Served(serving=ServedModel(task_id=tuned.task_id, model=tuned.name, model_id="0x" + tuned.model_id.hex(),
                                          url=host.broker_url if host else None))

    return app


Setup = Callable[[], tuple[FineTuningWorker, "TunedModelHost | None", StorageBlobStore]]
SETUP_RETRY_S = 5.0


@dataclass
class ProviderProcess:
    """Serves the progress API at once and sets the rest up in the background (chain
    registrations, storage, base models), so a devnet is not held up by the provider's start."""

    setup: Setup
    journal_path: Path
    provider: str
    worker: FineTuningWorker | None = None
    host: TunedModelHost | None = None
    store: StorageBlobStore | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def _host_loop(self) -> None:
        assert self.host is not None
        while not self.stop.wait(HOST_POLL_S):
            try:
                self.host.poll()
            except Exception as exc:  # keep serving attempts going whatever one round hit
                log.warning("serving the tuned model failed: %s", exc)

    def _main_loop(self) -> None:
        while self.worker is None and not self.stop.is_set():
            try:
                self.worker, self.host, self.store = self.setup()
            except ZgError as exc:  # chain or storage not there yet: try again
                log.warning("provider set-up: %s", exc)
                self.stop.wait(SETUP_RETRY_S)
        if self.host is not None:
            threading.Thread(target=self._host_loop, name="tuned-host", daemon=True).start()
        threading.Thread(target=self._warm_base_models, name="warm-base-models", daemon=True).start()
        while self.worker is not None and not self.stop.is_set():
            try:
                self.worker.run(self.stop)
            except Exception as exc:  # a chain or storage outage: wait and carry on
                log.warning("worker loop: %s", exc)
                self.stop.wait(self.worker.config.poll_s)

    def _warm_base_models(self) -> None:
        """Cache each base GGUF's tensor shapes now (parsing Gemma's takes ~8 s once per
        machine) rather than while the first task is being delivered."""
        from zgos.compute.finetune.gguf_lora import read_base_shapes

        assert self.worker is not None
        for base in self.worker.base_models.values():
            if base.base_gguf is not None:
                try:
                    read_base_shapes(base.base_gguf)
                except (OSError, ValueError) as exc:  # conversion will report it with the task
                    log.warning("cannot read the base model %s: %s", base.base_gguf, exc)

    def run(self, bind: str, port: int) -> None:
        main = threading.Thread(target=self._main_loop, name="finetune-worker", daemon=True)
        main.start()
        app = create_app(self.journal_path, lambda: self.host, self.provider, lambda: self.worker is not None)
        server = hardened_server(app, host=bind, port=port, policy=API_POLICY)
        try:
            serve_in_foreground(server)
        finally:
            self.stop.set()
            main.join(timeout=5)
            if self.host is not None:
                self.host.stop()
            if self.store is not None:
                self.store.client.close()


def zg_argv(data_dir: Path, rpc_url: str | None, deployment: str | None = None) -> list[str]:
    """argv running ``zg`` with this process's global options (data dir, chain, deployment)."""
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir)]
    argv += ["--rpc-url", rpc_url] if rpc_url else []
    return [*argv, "--deployment", deployment] if deployment else argv

