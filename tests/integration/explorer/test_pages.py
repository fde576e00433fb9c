"""The explorer's pages on the session chain: an uploaded file with its root, size and the
nodes' view of it, a transaction's calls and events decoded by name, DA blobs with the signers
who certified them, fine-tuning tasks, the search box resolving every kind of id to its page,
paging, and a 4xx with a message for every malformed or unknown id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.explorer.explorer_fixtures import (
    CHROMIUM,
    browser_dom,
    certified_blob,
    running_explorer,
    upload,
)
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.da.contracts import DAContracts


def get(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def all_files(explorer: str) -> Iterator[dict[str, Any]]:
    """Every file the explorer lists, newest first, following the ``before`` cursor."""
    before = None
    while True:
        page = get(f"{explorer}/api/storage/files", limit=100, **({"before": before} if before is not None else {}))
        yield from page["files"]
        if not page["files"] or page["files"][-1]["index"] == 0:
            return
        before = page["files"][-1]["index"]


def test_uploaded_file_is_listed_with_its_root_size_uploader_and_decoded_transaction(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    root, tx_hash = upload(chain, deployment, new_account, 3000)
    row = next(f for f in all_files(explorer) if f["root"] == "0x" + root.hex())
    assert (row["size"], row["uploader"], row["tx"]) == (3000, new_account.address, tx_hash)
    detail = get(f"{explorer}/api/storage/file/0x{root.hex()}")
    assert (detail["size"], detail["uploader"]) == (3000, new_account.address)
    assert all(n["error"] or not n["known"] for n in detail["nodes"]), "no node was sent its segments"
    tx = get(f"{explorer}/api/tx/{tx_hash}")
    assert tx["toName"] == "Flow" and tx["call"]["function"] == "submit" and tx["status"] == "success"
    assert tx["call"]["args"]["submission"]["data"]["length"] == 3000
    events = {(e["contract"], e["event"]) for e in tx["events"]}
    assert {("Flow", "Submit"), ("Reward", "RewardFilled")} <= events
    block = get(f"{explorer}/api/block/{tx['block']}")
    assert {"hash": tx_hash, "toName": "Flow", "method": "submit"}.items() <= next(
        t for t in block["transactions"] if t["hash"] == tx_hash).items()
    account = get(f"{explorer}/api/address/{new_account.address.lower()}")
    assert account["address"] == new_account.address and account["nonce"] >= 1 and account["contract"] is None
    assert get(f"{explorer}/api/address/{deployment.address('Flow')}")["contract"] == "Flow"
    fees = get(f"{explorer}/api/storage/rewards")
    fee = next(e for e in tx["events"] if e["event"] == "RewardFilled")["args"]["amount"]
    assert fees[-1]["block"] >= tx["block"] and int(fees[-1]["fees"]) >= int(fee), "the chart of fees includes it"


def test_da_blob_page_shows_its_status_certificate_and_signers(
    explorer: str, chain: Chain, private_da: DAContracts, new_account: LocalAccount
) -> None:
    blob_id, signer = certified_blob(chain, private_da, new_account)
    listed = get(f"{explorer}/api/da/blobs", limit=5)["blobs"][0]
    assert (listed["blobId"], listed["status"], listed["size"]) == ("0x" + blob_id.hex(), "certified", 1000)
    detail = get(f"{explorer}/api/da/blob/0x{blob_id.hex()}")
    assert detail["certificate"]["signers"] == [signer] and detail["blob"]["submitter"] == new_account.address
    quorum = get(f"{explorer}/api/da")
    assert signer in [s["address"] for s in quorum["signers"]]
    matches = get(f"{explorer}/api/search", q="0x" + blob_id.hex())["matches"]
    assert [(m["kind"], m["link"]) for m in matches] == [("blob", f"#/blob/0x{blob_id.hex()}")]
    # Its one signer announced 127.0.0.1:9 and serves nothing: the explorer's sampling says so.
    sampled = get(f"{explorer}/api/da/blob/0x{blob_id.hex()}/sampling")
    assert (sampled["available"], sampled["verified"], sampled["samples"]) == (False, 0, 64), sampled
    assert [(f["signer"], f["url"]) for f in sampled["failures"]] == [(signer, "127.0.0.1:9")]
    assert get(f"{explorer}/api/da/blob/0x{blob_id.hex()}/sampling") == sampled, "kept, not asked again"


def test_a_quorum_without_signers_is_shown_empty_not_as_an_error(
    chain: Chain, deployment_path: Path, tmp_path: Path,
) -> None:
    """On a DA pair of its own (the package's pair gets a signer from whichever test runs first)."""
    from tests.integration.da.helpers import deploy_da

    fresh = deploy_da(chain)
    pair = {"DASigners": fresh.signers.address, "DAEntrance": fresh.entrance.address}
    with running_explorer(tmp_path, chain, deployment_path, pair) as explorer:
        assert get(f"{explorer}/api/da")["signers"] == []
        assert get(f"{explorer}/api/da/blobs") == {"total": 0, "blobs": []}


def test_a_blob_status_follows_its_events_submitted_then_cancelled(
    explorer: str, private_da: DAContracts, new_account: LocalAccount
) -> None:
    from zgos.da.spec.blob import BlobHeader

    pending = private_da.submit_blob(new_account, BlobHeader(1001, (bytes.fromhex("c0" + "00" * 47),))).blob_id
    cancelled = private_da.submit_blob(new_account, BlobHeader(1002, (bytes.fromhex("c0" + "00" * 47),))).blob_id
    private_da.cancel_blob(new_account, cancelled)
    listed = {b["blobId"]: b["status"] for b in get(f"{explorer}/api/da/blobs", limit=5)["blobs"]}
    assert (listed["0x" + pending.hex()], listed["0x" + cancelled.hex()]) == ("submitted", "cancelled")
    detail = get(f"{explorer}/api/da/blob/0x{cancelled.hex()}")
    assert detail["blob"]["status"] == "cancelled" and detail["certificate"] is None
    for blob_id in (pending, cancelled):
        refused = httpx.get(f"{explorer}/api/da/blob/0x{blob_id.hex()}/sampling", timeout=30)
        assert refused.status_code == 409 and "not certified" in refused.json()["detail"], refused.text


def test_search_resolves_each_kind_of_id_to_its_page(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry
    from zgos.inft.contracts import InftContracts

    def kinds(q: str) -> set[tuple[str, str]]:
        return {(m["kind"], m["link"]) for m in get(f"{explorer}/api/search", q=q)["matches"]}

    root, tx_hash = upload(chain, deployment, new_account, 500)
    ModelRegistry(chain, deployment.address("ModelRegistry")).register_base_model(new_account, root, "search-model", "MIT")
    market = FineTuningMarket(chain, deployment.address("FineTuningServing"))
    market.add_or_update_service(new_account, "http://127.0.0.1:9/finetune", 1, 10**6, 10**6, [root])
    task_id = market.create_task(new_account, new_account.address, root, root, b"{}", 10**15, 1)
    token_id = InftContracts.from_deployment(chain, deployment).mint_plain(new_account, new_account.address)
    assert kinds(tx_hash) == {("tx", f"#/tx/{tx_hash}")}
    assert kinds(new_account.address.lower()) == {("address", f"#/address/{new_account.address}")}
    assert kinds("0x" + root.hex()) == {("file", f"#/file/0x{root.hex()}"), ("model", f"#/model/0x{root.hex()}")}
    assert ("task", f"#/task/{task_id}") in kinds(str(task_id)) and kinds(f"task {task_id}") == {("task", f"#/task/{task_id}")}
    assert kinds(f"token {token_id}") == {("token", f"#/token/{token_id}")}
    assert kinds("block 1") == {("block", "#/block/1")}
    task = get(f"{explorer}/api/compute/task/{task_id}")
    assert (task["task"]["status"], task["task"]["user"], task["progress"]) == ("created", new_account.address, None)
    assert "unreachable" in task["progressError"]
    assert get(f"{explorer}/api/compute/tasks", limit=100)["tasks"][0]["taskId"] >= task_id
    assert get(f"{explorer}/api/inft/token/{token_id}")["owner"] == new_account.address


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/search?q=hello", 400, "is not an id"),
    ("/api/search?q=0x" + "ab" * 32, 404, "nothing on this chain"),
    ("/api/search?q=token 999999999", 404, "nothing on this chain"),
    ("/api/tx/0x1234", 400, "not a transaction hash"),
    ("/api/tx/0x" + "ab" * 32, 404, "no transaction"),
    ("/api/block/999999999", 404, "no block"),
    ("/api/address/0xnothex", 400, "not an address"),
    ("/api/storage/file/0x" + "cd" * 32, 404, "no Flow submission"),
    ("/api/storage/file/root", 400, "not a data root"),
    ("/api/da/blob/0x" + "cd" * 32, 404, "no blob"),
    ("/api/compute/task/999999999", 404, "no fine-tuning task"),
    ("/api/inft/token/999999999", 404, "no agent token"),
    ("/api/alignment/subject/0x12", 400, "not an address"),
    ("/api/storage/files?limit=1000", 422, "less than or equal to 100"),
    ("/api/storage/file/0x" + "cd" * 32 + "/erasure", 404, "not uploaded with erasure coding"),
    ("/api/storage/file/0x12/erasure", 400, "not a data root"),
    ("/api/da/blob/0x" + "cd" * 32 + "/sampling", 404, "no blob"),
    ("/api/da/blob/blob/sampling", 400, "not a blob id"),
])
def test_bad_or_unknown_ids_are_a_4xx_that_says_why(explorer: str, path: str, status: int, message: str) -> None:
    response = httpx.get(f"{explorer}{path}", timeout=30)
    assert response.status_code == status and message in str(response.json()["detail"]), response.text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root)")
def test_a_transactions_deep_link_shows_its_decoded_call_and_events_in_a_browser(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount, tmp_path: Path
) -> None:
    _, tx_hash = upload(chain, deployment, new_account, 100)
    dom = browser_dom(f"{explorer}/#/tx/{tx_hash}", tmp_path / "profile", 4000)
    assert f"Transaction {tx_hash}" in dom, dom[-3000:]
    assert "Flow.submit" in dom and ">Submit<" in dom and ">RewardFilled<" in dom


def test_audit_reports_and_scores_are_listed_and_shown_on_the_subjects_page(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    from eth_account import Account

    from zgos.alignment.contracts import AlignmentContracts
    from zgos.alignment.spec.bonds import BondKind
    from zgos.alignment.spec.reports import Finding

    contracts = AlignmentContracts.from_deployment(chain, deployment)
    contracts.register_auditor(new_account, contracts.min_auditor_stake())
    subject = Account.create().address
    evidence, _ = upload(chain, deployment, new_account, 200)
    contracts.report(new_account, subject, BondKind.COMPUTE, Finding.LATENCY, evidence, -5)
    listed = get(f"{explorer}/api/alignment/reports", limit=5)["reports"][0]
    assert (listed["subject"], listed["kind"], listed["finding"], listed["scoreDelta"], listed["score"]) == (
        subject, "compute", "latency", -5, -5)
    assert listed["auditor"] == new_account.address and listed["evidenceRoot"] == "0x" + evidence.hex()
    assert {"operator": subject, "kind": "compute", "score": -5, "faults": 1}.items() <= next(
        s for s in get(f"{explorer}/api/alignment") if s["operator"] == subject).items()
    detail = get(f"{explorer}/api/alignment/subject/{subject.lower()}")
    assert [r["score"] for r in detail["records"]] == [-5] and [r["finding"] for r in detail["reports"]] == ["latency"]
    stranger = httpx.get(f"{explorer}/api/alignment/subject/{Account.create().address}", timeout=30)
    assert stranger.status_code == 404 and "neither bonded nor reported" in stranger.json()["detail"]


def test_the_home_page_comes_in_one_answer_that_matches_each_panel_asked_alone(
    explorer: str, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    root, _ = upload(chain, deployment, new_account, 1500)
    home = get(f"{explorer}/api/home")
    assert all(part["status"] == 200 for part in home.values()), {p: a for p, a in home.items() if a["status"] != 200}
    assert {"/api/status", "/api/storage", "/api/compute", "/api/inft"} <= set(home)
    files = home["/api/storage/files?limit=5"]["body"]
    assert files["files"][0]["root"] == "0x" + root.hex()
    assert files == get(f"{explorer}/api/storage/files", limit=5), "the same answer as the panel's own request"
    assert home["/api/status"]["body"]["chainId"] == chain.chain_id
