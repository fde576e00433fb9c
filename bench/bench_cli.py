"""How fast ``zg`` starts: ``zg --help``, ``zg version`` and ``zg devnet status`` (no devnet)
against ``python -c pass`` in the same run (issue "One shape": ≤ 0.3 s, ≤ 0.25 s, ≤ 10x)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import report

RUNS = 15
ZG = Path(sys.executable).with_name("zg")


def wall_time_s(argv: list[str]) -> float:
    """Median wall time of ``RUNS`` runs of ``argv`` (the first run warms the page cache)."""
    subprocess.run(argv, capture_output=True, check=False)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    python = wall_time_s([sys.executable, "-c", "pass"])
    with tempfile.TemporaryDirectory() as empty:
        cases = {
            "zg --help": ([str(ZG), "--help"], "<= 0.3 s and <= 10x"),
            "zg version": ([str(ZG), "version"], "<= 0.25 s and <= 10x"),
            "zg devnet status (no devnet)": ([str(ZG), "--data-dir", empty, "devnet", "status"], "<= 10x"),
        }
        for name, (argv, goal) in cases.items():
            report(f"{name} vs python -c pass (median of {RUNS}, wall)", wall_time_s(argv), python, "s", goal)


if __name__ == "__main__":
    main()
