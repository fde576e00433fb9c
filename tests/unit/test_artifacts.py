"""Committed contract artifacts match the Solidity sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from zgos.chain.artifacts import (
    ARTIFACTS_DIR,
    CONTRACTS_DIR,
    artifact_names,
    compute_source_hash,
    load_artifact,
)
from zgos.chain.client import decode_revert

SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "viaIR": True,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def test_artifacts_were_built_from_the_current_sources() -> None:
    names = artifact_names()
    assert "NodeRegistry" in names
    for name in names:
        artifact = load_artifact(name)
        expected = compute_source_hash(
            CONTRACTS_DIR / "src", artifact.compiler, json.dumps(SETTINGS, separators=(",", ":"))
        )
        assert artifact.source_hash == expected, f"{name} is stale: run `make contracts`"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed: cannot recompile")
def test_recompiling_reproduces_the_committed_bytecode(tmp_path: Path) -> None:
    if not (CONTRACTS_DIR / "node_modules" / "solc").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=CONTRACTS_DIR, check=True)
    out = tmp_path / "artifacts"
    subprocess.run(
        ["node", "build.js"], cwd=CONTRACTS_DIR, check=True, capture_output=True,
        env={**os.environ, "ZGOS_ARTIFACTS_OUT": str(out)},
    )
    fresh = sorted(p.stem for p in out.glob("*.json"))
    assert fresh == artifact_names()
    for name in fresh:
        rebuilt = json.loads((out / f"{name}.json").read_text())
        committed = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert rebuilt["bytecode"] == committed["bytecode"], f"{name}: run `make contracts`"
        assert rebuilt["abi"] == committed["abi"]


def test_decode_revert_reads_strings_panics_and_custom_errors() -> None:
    assert decode_revert(bytes.fromhex("08c379a0") + encode(["string"], ["no way"])) == "no way"
    assert decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])) == "Panic(0x11)"
    selector = function_signature_to_4byte_selector("InvalidShard(uint32,uint32)")
    assert decode_revert(selector + encode(["uint32", "uint32"], [3, 2])) == "InvalidShard(3, 2)"
    assert decode_revert(b"") == "reverted without a reason"
    assert decode_revert(b"\xde\xad\xbe\xef").startswith("reverted with data 0x")
