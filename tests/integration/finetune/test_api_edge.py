"""The fine-tuning provider's progress API (``zg finetune provider serve``) behind the guarded
edge: reads only, small JSON bodies, and nothing a stranger sends takes it down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount

from tests.adversarial.httpfuzz import FuzzProfile, assert_survives_fuzz
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port, wait_until


@contextmanager
def progress_api(data_dir: DataDir, account: LocalAccount, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A fine-tuning provider's progress API on a free port (no storage node: its set-up
    keeps retrying while the API serves at once)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    with open(tmp_path / "provider.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir.root), "finetune", "provider", "serve",
             "--tiny", "--no-serve-tuned", "--port", str(port), "--node", "http://127.0.0.1:1"],
            stdout=log, stderr=subprocess.STDOUT, env={**env, "ZGOS_PRIVATE_KEY": account.key.hex()})
    try:
        assert wait_until(lambda: httpx.get(url + "/health", timeout=2).status_code == 200, 300), \
            (tmp_path / "provider.log").read_text()[-3000:]
        yield url, process
    finally:
        process.terminate()
        process.wait(20)


def test_the_finetune_progress_api_refuses_what_it_does_not_take(
    devnet_dir: DataDir, new_account: LocalAccount, tmp_path: Path
) -> None:
    with progress_api(devnet_dir, new_account, tmp_path) as (url, process):
        page = httpx.post(url + "/v1/finetune/served", content=b"{}", headers={"content-type": "text/plain"})
        assert page.status_code == 415
        deep = httpx.post(url + "/v1/finetune/served", content=b"[" * 100_000,
                          headers={"content-type": "application/json"})
        assert deep.status_code == 413 and "1024 bytes" in deep.json()["error"]["message"]
        unknown = httpx.get(url + "/v1/finetune/tasks/424242", timeout=10)
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "unknown-task"
        assert httpx.get(url + "/v1/finetune/tasks/" + "9" * 5000, timeout=10).status_code in (404, 422)
        assert process.poll() is None
        assert httpx.get(url + "/health", timeout=10).json()["ok"] is True


def test_no_request_crashes_or_hangs_the_finetune_progress_api(
    devnet_dir: DataDir, new_account: LocalAccount, tmp_path: Path
) -> None:
    with progress_api(devnet_dir, new_account, tmp_path) as (url, process):
        assert_survives_fuzz(url, FuzzProfile(
            host=url.removeprefix("http://"), rpc_path=None, json_posts=("/v1/finetune/served",),
            get_paths=("/health", "/v1/finetune/tasks/{n}", "/v1/finetune/tasks/{s}", "/v1/finetune/served", "/{s}"),
            max_body_bytes=1024, numbers=(0, 1, 2**64)), 5)
        assert process.poll() is None
        assert "Traceback" not in (tmp_path / "provider.log").read_text(errors="replace")
        assert httpx.get(url + "/health", timeout=10).json()["ok"] is True
