"""The fine-tuning provider's progress API (``zg finetune provider serve``) behind the guarded
edge: reads only, small JSON bodies, and nothing a stranger sends takes it down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount

from zgos.datadir import DataDir
from zgos.netutil import free_port, wait_until


def test_the_finetune_progress_api_refuses_what_it_does_not_take(
    devnet_dir: DataDir, new_account: LocalAccount, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    with open(tmp_path / "provider.log", "wb") as log:
        process = subprocess.Popen(  # no storage node: its set-up keeps retrying, the API serves at once
            [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "finetune", "provider", "serve",
             "--tiny", "--no-serve-tuned", "--port", str(port), "--node", "http://127.0.0.1:1"],
            stdout=log, stderr=subprocess.STDOUT, env={**env, "ZGOS_PRIVATE_KEY": new_account.key.hex()})
    try:
        assert wait_until(lambda: httpx.get(url + "/health", timeout=2).status_code == 200, 300), \
            (tmp_path / "provider.log").read_text()[-3000:]
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
    finally:
        process.terminate()
        process.wait(20)
