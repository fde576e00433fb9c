"""Token counting with the model's own tokenizer (the billing rule of ``billing``).

The GGUF file carries the tokenizer; ``llama_cpp.Llama(vocab_only=True)`` loads just that
(~0.7 s, no weights), so a provider and a user holding the same model file (same sha256 as
registered on chain) count exactly the same tokens. The chat prompt is rendered with the same
chat format the model server uses (``--chat_format``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zgos.core.errors import ConfigError


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TokenCounter:
    """Counts prompt and completion tokens of one model (thread-safe)."""

    def __init__(self, model_path: Path, chat_format: str = "gemma") -> None:
        from llama_cpp import Llama, llama_chat_format

        if not model_path.is_file():
            raise ConfigError(f"no model file at {model_path}", "pass --model PATH to a GGUF file")
        with _quiet_stderr():  # llama.cpp prints context warnings from C, even with verbose=False
            self._llama = Llama(str(model_path), vocab_only=True, verbose=False)
        self._format: Any = getattr(llama_chat_format, f"format_{chat_format.replace('-', '_')}", None)
        if self._format is None:
            raise ConfigError(f"unknown chat format {chat_format!r}", "use e.g. gemma or chatml")
        self._lock = threading.Lock()

    def render_prompt(self, messages: list[dict[str, Any]]) -> str:
        return str(self._format(messages=messages).prompt)

    def count_prompt(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of the rendered chat prompt, BOS included, special tokens parsed."""
        return self._count(self.render_prompt(messages).encode(), add_bos=True, special=True)

    def count_completion(self, text: str) -> int:
        """Tokens of an answer's text (no BOS, special tokens not parsed)."""
        if not text:
            return 0
        return self._count(text.encode(), add_bos=False, special=False)

    def _count(self, text: bytes, *, add_bos: bool, special: bool) -> int:
        """How many tokens ``text`` is, without materialising them: given no output buffer,
        ``llama_tokenize`` returns minus the count (``Llama.tokenize`` would allocate the model's
        whole training context, 32k tokens, on every call)."""
        import llama_cpp

        with self._lock:
            return abs(int(llama_cpp.llama_tokenize(self._llama._model.vocab, text, len(text), None, 0,
                                                    add_bos, special)))
