"""Model servers for agents that carry a LoRA adapter (issue 16 §5).

llama-cpp-python's server loads one adapter at start (``--lora_path``), so an agent with an
adapter runs on its own llama.cpp child: the provider's base GGUF plus that adapter, on a free
loopback port. At most ``MAX_ADAPTER_SERVERS`` run at once (each holds a copy of the base
model in memory); the least recently used one is stopped for a new agent, and its decrypted
adapter file is deleted with it. Children die with the broker (``PR_SET_PDEATHSIG``), and a
broker that starts again clears any adapter file a killed one left behind.

Before llama.cpp parses an adapter it is read in Python and checked against the base model
(:func:`zgos.compute.finetune.gguf_lora.check_gguf_adapter`): an agent's owner is a stranger,
and its file reaches a C parser only once it is a well-formed LoRA for this model.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zgos.compute.finetune.gguf_lora import AdapterConversionError, check_gguf_adapter
from zgos.compute.model import model_server_argv
from zgos.compute.provider.wire import BrokerError
from zgos.runtime.netutil import free_port, http_ok, wait_until
from zgos.runtime.process import spawn, terminate_all

log = logging.getLogger(__name__)

MAX_ADAPTER_SERVERS = 1
ADAPTER_READY_TIMEOUT_S = 120.0
ADAPTER_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AdapterServerConfig:
    """How the provider's own model server runs, so an adapter's server runs the same way."""

    base_gguf: Path
    model_id: str
    chat_format: str
    threads: int = 1


@dataclass
class _Running:
    url: str
    process: subprocess.Popen[bytes]
    adapter: Path


class AdapterServers:
    """Keeps llama.cpp children serving agents' adapters, keyed by the agent's data hashes."""

    def __init__(self, config: AdapterServerConfig, work_dir: Path) -> None:
        self.config = config
        self.work_dir = work_dir
        shutil.rmtree(work_dir, ignore_errors=True)  # plaintext adapters a killed broker left behind
        work_dir.mkdir(parents=True, mode=0o700)
        self._running: OrderedDict[str, _Running] = OrderedDict()
        self._lock = threading.Lock()

    def url_for(self, key: str, load: Callable[[], bytes]) -> str:
        """The base URL of the server running ``key``'s adapter; when none runs, start one from
        the decrypted adapter ``load`` returns (``BrokerError`` 409 for an adapter that does not
        fit the base model or that llama.cpp will not load)."""
        with self._lock:
            running = self._running.get(key)
            if running is not None and running.process.poll() is None:
                self._running.move_to_end(key)
                return running.url
            self._forget(key)
            adapter = load()
            while len(self._running) >= MAX_ADAPTER_SERVERS:
                self._forget(next(iter(self._running)))
            self._running[key] = self._start(key, adapter)
            return self._running[key].url

    def _start(self, key: str, adapter: bytes) -> _Running:
        path = self.work_dir / f"{key}.gguf"
        path.touch(mode=0o600)
        path.write_bytes(adapter)
        try:
            check_gguf_adapter(path, self.config.base_gguf)
        except AdapterConversionError as exc:
            path.unlink()
            raise BrokerError(409, "agent-adapter-unusable", f"the agent's adapter does not fit this provider's model: {exc}") from None
        port = free_port()
        argv = model_server_argv(self.config.base_gguf, port=port, model_id=self.config.model_id,
                                 chat_format=self.config.chat_format, threads=self.config.threads)
        process = spawn([*argv, "--lora_path", str(path)], self.work_dir / f"{key}.log", die_with_parent=True)
        url = f"http://127.0.0.1:{port}"
        running = _Running(url, process, path)
        if not wait_until(lambda: process.poll() is not None or http_ok(url + "/v1/models"), ADAPTER_READY_TIMEOUT_S) \
                or process.poll() is not None:
            self._stop(running)
            raise BrokerError(409, "agent-adapter-unusable", "the model server could not load the agent's adapter")
        log.info("serving an agent adapter (%d bytes) at %s", len(adapter), url)
        return running

    def _forget(self, key: str) -> None:
        running = self._running.pop(key, None)
        if running is not None:
            self._stop(running)

    def _stop(self, running: _Running) -> None:
        terminate_all([running.process.pid], ADAPTER_STOP_TIMEOUT_S)
        running.process.wait()
        running.adapter.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            for key in list(self._running):
                self._forget(key)
