"""An explorer process (``zg explorer serve``) on a data dir (a devnet's, or one on the session
chain), a headless browser's view of its pages, and the data the explorer tests show (a file
submitted to Flow, a certified DA blob)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.cdp import CHROMIUM, Browser, BrowserError
from tests.conftest import session_chain_data_dir
from tests.servers import await_http
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.da.contracts import DAContracts
from zgos.runtime.netutil import free_port
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree


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


DESKTOP = (1280, 900)
PHONE = (390, 844)  # CSS pixels, a common phone
RENDER_TIMEOUT_S = 30.0  # generous: the suite shares 2 cores
ARTIFACTS = Path(os.environ.get("ZGOS_TEST_ARTIFACTS", Path(__file__).parents[3] / "test-artifacts")) / "explorer"


def show_page(browser: Browser, url: str, kind: str, name: str) -> str:
    """Open ``url`` at desktop width, wait until its page is drawn, save both screenshots and
    check the phone layout; the page's text at desktop width."""
    browser.set_width(*DESKTOP, mobile=False)
    browser.open(url)
    try:
        browser.wait_for(f"document.body && document.body.dataset.rendered === {kind!r}", RENDER_TIMEOUT_S)
    except BrowserError as exc:
        raise AssertionError(f"{url} was not drawn: {exc}; it shows: {browser.text()[:500]!r}") from None
    text = browser.text()
    browser.screenshot(ARTIFACTS / f"{name}-desktop.png")
    browser.set_width(*PHONE, mobile=True)
    browser.wait_for(f"window.innerWidth === {PHONE[0]}")
    assert not browser.overflows(), f"{name} scrolls sideways at {PHONE[0]} px"
    browser.screenshot(ARTIFACTS / f"{name}-phone.png")
    return text




def browser_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The DOM of ``url`` after ``budget_ms`` of (virtual) time in headless chromium."""
    assert CHROMIUM is not None, "chromium is not installed"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    ).stdout


def upload(chain: Chain, deployment: Deployment, account: LocalAccount, size: int) -> tuple[bytes, str]:
    tree = FileTree.from_bytes(os.urandom(size))
    result = FlowContract(chain, deployment.address("Flow")).submit(account, [tree.submission()])
    return tree.root, result.tx_hash


_SIGNERS: dict[str, Any] = {}  # DAEntrance address -> the one signer registered for these tests


def certified_blob(chain: Chain, da: DAContracts, submitter: LocalAccount) -> tuple[bytes, str]:
    """A blob submitted to ``da`` and certified by its one test signer (registered on first
    use); its id and signer."""
    from tests.integration.da.helpers import funded_signer, next_epoch
    from zgos.da.spec import bls
    from zgos.da.spec.blob import BlobHeader

    signer = _SIGNERS.get(da.entrance.address)
    if signer is None:
        signer = _SIGNERS[da.entrance.address] = funded_signer(chain)
        da.register(signer.account, signer.secret, "127.0.0.1:9", stake=10**18)
        next_epoch(da)
    submitted = da.submit_blob(submitter, BlobHeader(1000, (bytes.fromhex("c0" + "00" * 47),)))
    message = da.signing_message(submitted.blob_id, submitted.epoch)
    da.submit_certificate(submitter, submitted.blob_id, [signer.account.address],
                          bls.aggregate([bls.sign(signer.secret, message)]))
    return submitted.blob_id, signer.account.address
