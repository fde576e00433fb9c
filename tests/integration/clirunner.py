"""Run ``zg`` as a user would: a subprocess with its own environment, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def zg(data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}
    return subprocess.run(
        [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env={**base, **(env or {})},
    )
