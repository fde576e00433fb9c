"""Run a script of ``tests/compat`` with node against 0G's TypeScript SDK (npm
@0gfoundation/0g-ts-sdk, installed by `make test` into .tools/0g-ts-sdk); without node or the
SDK the calling test skips and says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPAT = REPO / "tests" / "compat"
SDK_MODULES = REPO / ".tools" / "0g-ts-sdk" / "node_modules"


def run_node(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot run 0G's TypeScript SDK")
    if not (SDK_MODULES / "@0gfoundation" / "0g-ts-sdk").is_dir():
        pytest.skip("0G's TS SDK is not installed in .tools/0g-ts-sdk (run `make test`, needs npm)")
    result = subprocess.run(
        ["node", str(COMPAT / script), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "NODE_PATH": str(SDK_MODULES), **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
