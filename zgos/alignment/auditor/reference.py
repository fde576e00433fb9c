"""The auditor's own model server: re-execution of a provider's answer (issue 17 §2).

A provider registers the hash of the model it serves (the storage root of its GGUF). The
auditor runs that very file on llama.cpp and asks it the probe's prompt greedily (temperature
0, a fixed seed): llama.cpp's greedy decoding of one GGUF gives the same tokens whatever the
thread count (measured here on Gemma 3 270M), so an honest provider's answer matches it and a
provider serving another or a quantised-down model does not.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from zgos.alignment.auditor.findings import AuditorError
from zgos.compute.model import DEFAULT_CHAT_FORMAT, model_server_argv
from zgos.runtime.netutil import free_port, http_ok, wait_until
from zgos.runtime.process import spawn, terminate_all

GREEDY = {"temperature": 0, "seed": 1}
READY_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 120.0


class ReferenceModel:
    """A llama.cpp child serving ``gguf`` on a free loopback port, started on first use."""

    def __init__(self, gguf: Path, log_dir: Path, chat_format: str = DEFAULT_CHAT_FORMAT, threads: int = 1) -> None:
        self.gguf = gguf
        self.log_dir = log_dir
        self.chat_format = chat_format
        self.threads = threads
        self._process: subprocess.Popen[bytes] | None = None
        self._url = ""

    def _ensure(self) -> str:
        if self._process is not None and self._process.poll() is None:
            return self._url
        port = free_port()
        argv = model_server_argv(self.gguf, port=port, chat_format=self.chat_format, threads=self.threads)
        self._process = spawn(argv, self.log_dir / "reference-model.log", die_with_parent=True)
        self._url = f"http://127.0.0.1:{port}"
        process, url = self._process, self._url
        if not wait_until(lambda: process.poll() is not None or http_ok(url + "/v1/models"), READY_TIMEOUT_S) \
                or process.poll() is not None:
            raise AuditorError(f"the reference model server did not start (log in {self.log_dir})")
        return url

    def answer(self, messages: list[dict[str, Any]], max_tokens: int) -> str:
        """The model's greedy answer to ``messages``."""
        url = self._ensure()
        try:
            reply = httpx.post(url + "/v1/chat/completions", timeout=ANSWER_TIMEOUT_S,
                               json={**GREEDY, "messages": messages, "max_tokens": max_tokens})
            reply.raise_for_status()
            return str(reply.json()["choices"][0]["message"]["content"])
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise AuditorError(f"the reference model failed: {exc}") from None

    def close(self) -> None:
        if self._process is not None:
            terminate_all([self._process.pid])
            self._process.wait()
            self._process = None
