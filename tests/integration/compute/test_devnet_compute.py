"""`zg devnet up` gives a working compute network: `zg compute chat "hello"` out of the box
(on a devnet of the chain and the compute group: a storage node, model server and provider),
and the answer's provenance is fully verified down to the model file's uploader."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.clirunner import devnet_chain_port, devnet_up, zg


@pytest.fixture
def devnet_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "devnet"
    yield root
    zg(root, "devnet", "down")


@pytest.mark.slow
def test_devnet_compute_chat_works_out_of_the_box(devnet_root: Path) -> None:
    port = devnet_chain_port()
    started = devnet_up(devnet_root, port, "--only", "compute")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "provider-0" in started.stdout and "model" in started.stdout
    chat = zg(devnet_root, "compute", "chat", "hello", "--max-tokens", "4")
    assert chat.returncode == 0, chat.stderr
    assert "verified: gemma-3-270m" in chat.stderr and "Traceback" not in chat.stderr
    response_id = re.search(r"id\s+(0x[0-9a-f]{64})", chat.stderr)
    assert response_id, chat.stderr
    verified = zg(devnet_root, "compute", "verify", response_id.group(1))
    assert verified.returncode == 0 and '"signature_valid": true' in verified.stdout, verified.stdout
    assert_provenance_fully_verified(devnet_root, response_id.group(1))
    # no --admin-url: the data dir names its devnet's admin API (this devnet is not on 3081)
    status = zg(devnet_root, "compute", "provider", "status")
    assert status.returncode == 0 and re.search(r"requests\s+│\s+1", status.stdout), status.stdout
    settle = zg(devnet_root, "compute", "provider", "settle")
    assert settle.returncode == 0 and "settled 1 users" in settle.stdout, settle.stdout + settle.stderr
    assert_explorer_shows_the_answer_its_model_and_the_settlement(devnet_root, response_id.group(1))
    refused = zg(devnet_root, "compute", "fund", "1", "2", "3")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
    assert_the_tour_runs_the_steps_this_devnet_has(devnet_root)


def assert_the_tour_runs_the_steps_this_devnet_has(devnet_root: Path) -> None:
    """`zg tour --step N` on a devnet without the fine-tuning provider: a step whose input an
    earlier step records names that step; the dataset upload checks its root; the chat falls
    back to the base model (saying so) and its answer verifies and traces back to the model file."""
    missing = zg(devnet_root, "tour", "--step", "5")
    assert missing.returncode == 1 and "run it first: `zg tour --step 4`" in missing.stderr, missing.stderr
    uploaded = zg(devnet_root, "tour", "--step", "1")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert "computed from the file's bytes = the root on Flow" in uploaded.stdout
    assert "#/file/0x" in uploaded.stdout and "runs no explorer" in uploaded.stdout
    no_tuner = zg(devnet_root, "tour", "--step", "2")
    assert no_tuner.returncode == 1 and "runs no fine-tuning provider" in no_tuner.stderr, no_tuner.stderr
    for step, shown in (("4", "asking the devnet's base model"), ("5", "signature by"),
                        ("6", "lineage ends at the model file")):
        ran = zg(devnet_root, "tour", "--step", step)
        assert ran.returncode == 0 and shown in ran.stdout, ran.stdout + ran.stderr
        assert "Traceback" not in ran.stderr and "#/response/0x" in ran.stdout


def assert_provenance_fully_verified(devnet_root: Path, response_id: str) -> None:
    """response -> base model (registered, id = the GGUF's storage root) -> its Flow upload ->
    uploader, every check passed (the devnet published the model before the provider started)."""
    from zgos.compute.model import GEMMA_ROOT

    shown = zg(devnet_root, "provenance", "show", response_id, "--json")
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    model = tree["children"][0]
    assert (tree["kind"], model["kind"], model["id"]) == ("response", "model", "0x" + GEMMA_ROOT.hex())
    assert model["label"] == "base model gemma-3-270m"
    failed = [(n["id"], c) for n in walk(tree) for c in n["checks"] if c["ok"] is not True]
    assert not failed and tree["verified"] and model["verified"], failed
    assert "uploaded by" in model["checks"][1]["detail"]


def walk(node: dict) -> list[dict]:
    return [node, *(n for child in node["children"] for n in walk(child))]


def assert_explorer_shows_the_answer_its_model_and_the_settlement(devnet_root: Path, response_id: str) -> None:
    """The explorer on this devnet finds the response by its id (the provider signed it), draws
    its lineage fully verified, lists the model file on Flow and the provider's settlement."""
    import httpx

    from tests.integration.explorer.explorer_fixtures import serving_explorer
    from zgos.compute.model import GEMMA_ROOT

    with serving_explorer(devnet_root, devnet_root.parent / "explorer.log") as url:
        found = httpx.get(f"{url}/api/search", params={"q": response_id}, timeout=30).json()
        assert [(m["kind"], m["link"]) for m in found["matches"]] == [("response", f"#/response/{response_id}")], found
        lineage = httpx.get(f"{url}/api/provenance/{response_id}", timeout=30).json()
        assert all(node["verified"] for node in walk(lineage)), lineage
        model = httpx.get(f"{url}/api/search", params={"q": "0x" + GEMMA_ROOT.hex()}, timeout=30).json()
        assert {m["kind"] for m in model["matches"]} == {"file", "model"}
        gguf = httpx.get(f"{url}/api/storage/file/0x{GEMMA_ROOT.hex()}", timeout=30).json()
        assert gguf["size"] == 253113024 and all(n["finalized"] for n in gguf["nodes"]), gguf
        settled = httpx.get(f"{url}/api/compute/settlements", timeout=30).json()
        assert settled["total"] == 1 and int(settled["settlements"][0]["amount"]) > 0, settled
