"""An explorer process (``zg explorer serve``) on a data dir (a devnet's, or one on the session
chain), and a headless browser's view of its pages, for the explorer tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import session_chain_data_dir
from tests.servers import await_http
from zgos.chain.client import Chain
from zgos.runtime.netutil import free_port


@contextmanager
def running_explorer(root: Path, chain: Chain, deployment_path: Path,
                     addresses: dict[str, str] | None = None) -> Iterator[str]:
    """The URL of an explorer serving a new data dir under ``root`` on the session chain (its
    deployment with ``addresses`` in place of the session's, e.g. a private DA pair)."""
    data_dir = session_chain_data_dir(root / "data", chain, deployment_path)
    if addresses:
        record = json.loads(data_dir.deployment.read_text())
        for name, address in addresses.items():
            record["contracts"][name]["address"] = address
        data_dir.deployment.write_text(json.dumps(record))
    with serving_explorer(data_dir.root, root / "explorer.log") as url:
        yield url


@contextmanager
def serving_explorer(data_dir: Path, log_path: Path) -> Iterator[str]:
    """The URL of ``zg --data-dir DATA_DIR explorer serve`` on a free port (logging to ``log_path``)."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), "explorer", "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await_http(f"{url}/health", "the explorer", log_path, process)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The DOM of ``url`` after ``budget_ms`` of (virtual) time in headless chromium."""
    assert CHROMIUM is not None, "chromium is not installed"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    ).stdout
