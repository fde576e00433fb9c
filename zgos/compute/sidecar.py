"""Facts about a large file computed once and cached beside it, e.g. a model's storage root.

``<file>.<name>.json`` holds the value with the file's size and mtime; a file that changed is
recomputed. A directory that cannot be written (a read-only model store) only skips the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def sidecar_path(path: Path, name: str) -> Path:
    return path.with_name(f"{path.name}.{name}.json")


def cached_beside(path: Path, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON value) for the file at ``path``, from its sidecar when still valid."""
    stat = path.stat()
    sidecar = sidecar_path(path, name)
    try:
        cached = json.loads(sidecar.read_text())
        if cached["size"] == stat.st_size and cached["mtime"] == stat.st_mtime:
            return cached["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    store_beside(path, name, value)
    return value


def store_beside(path: Path, name: str, value: Any) -> None:
    """Record ``value`` for the file at ``path`` as it is now (atomic; skipped if unwritable)."""
    stat = path.stat()
    sidecar = sidecar_path(path, name)
    partial = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps({"size": stat.st_size, "mtime": stat.st_mtime, "value": value}))
        os.replace(partial, sidecar)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
