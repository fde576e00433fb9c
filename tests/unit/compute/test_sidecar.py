"""Facts cached beside a file: computed once, recomputed when the file changes, and a
read-only directory only skips the cache."""

from __future__ import annotations

import os
from pathlib import Path

from zgos.compute.sidecar import cached_beside, sidecar_path


def test_a_fact_is_computed_once_and_again_after_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights")
    calls: list[int] = []

    def compute() -> list[int]:
        calls.append(1)
        return [len(path.read_bytes()), len(calls)]

    assert cached_beside(path, "facts", compute) == [7, 1]
    assert cached_beside(path, "facts", compute) == [7, 1] and len(calls) == 1
    path.write_bytes(b"new weights!")
    os.utime(path, (1, 1))
    assert cached_beside(path, "facts", compute) == [12, 2]
    sidecar_path(path, "facts").write_text("{not json")
    assert cached_beside(path, "facts", compute) == [12, 3], "a damaged sidecar is recomputed, not trusted"


def test_an_unwritable_sidecar_only_skips_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights")
    sidecar_path(path, "facts").mkdir()  # neither readable nor replaceable as a file
    assert cached_beside(path, "facts", lambda: "value") == "value"
    assert sidecar_path(path, "facts").is_dir() and not list(tmp_path.glob("*.partial"))
