"""Explorer benchmark (issue 18): every page's load time in a real browser on a chain holding
1,000 files, 200 DA blobs and 5,000 inference settlements.

The chain is filled the cheapest real way, with direct contract transactions from devnet
accounts while anvil mines a block per transaction: files in ``Flow.batchSubmit`` batches of
``FILES_PER_TX`` (each a ``Submit`` and a ``RewardFilled`` event), blobs submitted to and
certified on ``DAEntrance`` by one registered signer (``BlobSubmitted``/``BlobCertified``), and
settlements as ``settleBatch`` calls of ``VOUCHERS_PER_TX`` vouchers, each voucher a receipt of
one more wei from one of ``USERS`` users (one ``Settled`` event each: what 5,000 paid inference
requests leave on chain). Then anvil mines a block a second, as on the devnet.

The explorer runs in this process (``create_app`` under uvicorn, the event index in a fresh
data dir); the baseline is a static page of the same size from the same server: each page's
drawn DOM, saved without its scripts and served from ``/baseline``. Headless chromium
(``tests.cdp``) loads each page ``ROUNDS`` times, pages interleaved; a page's load time is
``firstRender`` (navigation start to the page drawn from its API answers, measured in the
browser), the baseline's is its ``loadEventEnd``. Goal: p50 <= 300 ms for every page.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.staticfiles import StaticFiles

from bench.harness import BenchChain, bench_chain
from tests.cdp import Browser
from tests.conftest import session_chain_data_dir
from tests.integration.da.helpers import funded_signer, next_epoch
from zgos.chain.client import Chain
from zgos.compute.contracts import ComputeContracts
from zgos.compute.finetune.contracts import FineTuningMarket
from zgos.compute.spec import vouchers
from zgos.da.contracts import DAContracts
from zgos.da.spec import bls
from zgos.da.spec.blob import BlobHeader
from zgos.da.spec.params import MIN_STAKE_WEI
from zgos.explorer.app import create_app
from zgos.explorer.deps import ExplorerDeps
from zgos.inft.contracts import InftContracts
from zgos.runtime.netutil import free_port, http_ok, wait_until
from zgos.storage.contracts import FlowContract
from zgos.storage.spec.filetree import FileTree

FILES = 1_000
FILES_PER_TX = 25
FILE_BYTES = 300
BLOBS = 200
BLOB_BYTES = 1_000
SETTLEMENTS = 5_000
USERS = 25
VOUCHERS_PER_TX = 200  # InferenceServing.MAX_VOUCHERS_PER_BATCH
BLOCK_TIME_S = 1.0  # the devnet's, once filled
ROUNDS = 15
GOAL_MS = 300.0
BALANCE_WEI = 10**24


def set_mining(chain: Chain, *, per_transaction: bool) -> None:
    """A block per transaction (filling), or one every ``BLOCK_TIME_S`` (browsing)."""
    provider = chain.w3.provider
    calls = [("evm_setIntervalMining", 0), ("evm_setAutomine", True)] if per_transaction else [
        ("evm_setAutomine", False), ("evm_setIntervalMining", int(BLOCK_TIME_S))]
    for method, value in calls:  # in this order: the last call sets anvil's mining mode
        provider.make_request(method, [value])  # type: ignore[arg-type]


def rich_account(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(BALANCE_WEI)])  # type: ignore[arg-type]
    return account


def fill_files(bench: BenchChain) -> tuple[bytes, str, str]:
    """``FILES`` files on Flow; the last one's root and tx, and the uploader."""
    flow = FlowContract(bench.chain, bench.deployment.address("Flow"))
    uploader = rich_account(bench.chain)
    for start in range(0, FILES, FILES_PER_TX):
        trees = [FileTree.from_bytes(os.urandom(FILE_BYTES)) for _ in range(min(FILES_PER_TX, FILES - start))]
        result = flow.submit(uploader, [t.submission() for t in trees])
    return trees[-1].root, result.tx_hash, uploader.address


def fill_blobs(bench: BenchChain) -> bytes:
    """``BLOBS`` blobs, each certified by one registered signer; the last one's id."""
    da = DAContracts.from_addresses(bench.chain, bench.deployment.addresses)
    signer, submitter = funded_signer(bench.chain, 10 * MIN_STAKE_WEI), rich_account(bench.chain)
    da.register(signer.account, signer.secret, "127.0.0.1:9", stake=MIN_STAKE_WEI)
    next_epoch(da)
    for i in range(BLOBS):  # one size each: a blob's id hashes its header
        submitted = da.submit_blob(submitter, BlobHeader(BLOB_BYTES + i, (bytes.fromhex("c0" + "00" * 47),)))
        message = da.signing_message(submitted.blob_id, submitted.epoch)
        da.submit_certificate(submitter, submitted.blob_id, [signer.account.address],
                              bls.aggregate([bls.sign(signer.secret, message)]))
    return submitted.blob_id


def fill_settlements(bench: BenchChain) -> str:
    """``SETTLEMENTS`` ``Settled`` events: each user's receipts of 1, 2, ... wei, settled in
    batches; the provider's address."""
    compute = ComputeContracts.from_deployment(bench.chain, bench.deployment)
    provider = rich_account(bench.chain)
    per_user = SETTLEMENTS // USERS
    for _ in range(USERS):
        user = rich_account(bench.chain)
        compute.deposit_and_fund(user, provider.address, 10**15)
        receipts = [vouchers.Receipt(user.address.lower(), provider.address.lower(), total)
                    for total in range(1, per_user + 1)]
        signed = [(r, vouchers.sign_message(bytes(user.key), compute.domain, r)) for r in receipts]
        for start in range(0, len(signed), VOUCHERS_PER_TX):
            compute.settle_batch(provider, signed[start:start + VOUCHERS_PER_TX])
    return provider.address


def fill_task_and_token(bench: BenchChain, root: bytes) -> tuple[int, int]:
    """One fine-tuning task on ``root`` and one agent token (their pages are measured too)."""
    owner = rich_account(bench.chain)
    market = FineTuningMarket(bench.chain, bench.deployment.address("FineTuningServing"))
    market.add_or_update_service(owner, "http://127.0.0.1:9/finetune", 1, 10**6, 10**6, [root])
    task_id = market.create_task(owner, owner.address, root, root, b"{}", 10**15, 1)
    return task_id, InftContracts.from_deployment(bench.chain, bench.deployment).mint_plain(owner, owner.address)


@contextmanager
def serving(deps: ExplorerDeps, baseline_dir: Path) -> Iterator[str]:
    """The explorer app in this process, with ``baseline_dir`` served at ``/baseline``."""
    app = create_app(deps)
    app.mount("/baseline", StaticFiles(directory=baseline_dir))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: http_ok(f"{url}/health"), 30), "the explorer did not start"
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def page_load_ms(browser: Browser, url: str, kind: str) -> float:
    """Navigation start to the page drawn, in the browser's clock."""
    browser.open(url)
    return float(browser.wait_for(f"document.body && document.body.dataset.rendered === {kind!r} && window.firstRender",
                                  60))


STATIC_COPY = ("(() => { const d = document.documentElement.cloneNode(true); "
               "d.querySelectorAll('script').forEach((s) => s.remove()); return '<!doctype html>' + d.outerHTML; })()")
STATIC_LOADED = ("document.readyState === 'complete' && "
                 "performance.getEntriesByType('navigation')[0].loadEventEnd")


def static_load_ms(browser: Browser, url: str) -> float:
    """Navigation start to the load event of a static page."""
    browser.open(url)
    return float(browser.wait_for(STATIC_LOADED, 60))


def cold_index_s(url: str) -> dict[str, float]:
    """The first request of each indexed list: it reads every log since the deployment."""
    times = {}
    for path in ("/api/storage/files", "/api/da/blobs", "/api/compute/settlements", "/api/storage/rewards"):
        start = time.perf_counter()
        httpx.get(f"{url}{path}", timeout=300).raise_for_status()
        times[path] = time.perf_counter() - start
    return times


def measure(browser: Browser, url: str, pages: dict[str, tuple[str, str]], baseline_dir: Path
            ) -> dict[str, tuple[list[float], list[float]]]:
    """Each page's and its static copy's load times over ``ROUNDS`` interleaved rounds."""
    for name, (route, kind) in pages.items():  # warm: cache the static files, save each static copy
        page_load_ms(browser, f"{url}/{route}", kind)
        (baseline_dir / f"{name}.html").write_text(str(browser.evaluate(STATIC_COPY)))
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pages}
    for _ in range(ROUNDS):
        for name, (route, kind) in pages.items():
            samples[name][0].append(page_load_ms(browser, f"{url}/{route}", kind))
            samples[name][1].append(static_load_ms(browser, f"{url}/baseline/{name}.html"))
    return samples


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def fill(bench: BenchChain) -> dict[str, tuple[str, str]]:
    """The chain filled; the pages to measure: name -> (route, the kind it draws)."""
    set_mining(bench.chain, per_transaction=True)
    start = time.perf_counter()
    root, tx, uploader = fill_files(bench)
    blob = fill_blobs(bench)
    provider = fill_settlements(bench)
    task_id, token_id = fill_task_and_token(bench, root)
    set_mining(bench.chain, per_transaction=False)
    block = bench.chain.w3.eth.get_transaction_receipt(tx)["blockNumber"]
    print(f"filled: {FILES} files, {BLOBS} certified blobs, {SETTLEMENTS} settlements in "
          f"{time.perf_counter() - start:.0f} s (chain at block {bench.chain.block_number()})", flush=True)
    return {
        "home": ("", "home"), "blocks": ("#/blocks", "blocks"), "files": ("#/files", "files"),
        "files, page 25": ("#/files/500", "files"), "file": (f"#/file/0x{root.hex()}", "file"),
        "blobs": ("#/blobs", "blobs"), "blob": (f"#/blob/0x{blob.hex()}", "blob"),
        "settlements": ("#/settlements", "settlements"), "settlements, page 200": ("#/settlements/1000", "settlements"),
        "tasks": ("#/tasks", "tasks"), "task": (f"#/task/{task_id}", "task"), "tx": (f"#/tx/{tx}", "tx"),
        "block": (f"#/block/{block}", "block"), "address": (f"#/address/{provider}", "address"),
        "uploader": (f"#/address/{uploader}", "address"), "token": (f"#/token/{token_id}", "token"),
    }


def report_pages(samples: dict[str, tuple[list[float], list[float]]]) -> None:
    print(f"| page | p50 ms | p90 ms | static copy p50 ms | ratio | goal p50 <= {GOAL_MS:.0f} ms |", flush=True)
    for name, (ours, static) in samples.items():
        p50, base = statistics.median(ours), statistics.median(static)
        p90 = statistics.quantiles(ours, n=10)[-1]
        verdict = "ok" if p50 <= GOAL_MS else "MISSED"
        print(f"| {name} | {p50:.0f} | {p90:.0f} | {base:.0f} | {p50 / base:.2f}x | {verdict} |", flush=True)


def main() -> None:
    print(f"load before: {load_average()}", flush=True)
    with bench_chain(block_time_s=BLOCK_TIME_S) as bench, tempfile.TemporaryDirectory(prefix="zgos-explorer-") as tmp:
        pages = fill(bench)
        data_dir = session_chain_data_dir(Path(tmp) / "data", bench.chain, bench.workdir / "deployment.json")
        baseline_dir = Path(tmp) / "baseline"
        baseline_dir.mkdir()
        deps = ExplorerDeps(data_dir=data_dir, rpc_url=bench.chain.rpc_url)
        with serving(deps, baseline_dir) as url, Browser(Path(tmp) / "profile") as browser:
            for path, seconds in cold_index_s(url).items():
                print(f"cold index, first {path}: {seconds:.2f} s", flush=True)
            print(f"load after filling: {load_average()}", flush=True)
            samples = measure(browser, url, pages, baseline_dir)
        report_pages(samples)
    print(f"load after: {load_average()}", flush=True)
