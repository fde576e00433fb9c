"""The base models a fine-tuning provider offers and a user counts tokens with.

Production: Gemma 3 270M from its GGUF, whose on-chain id is the storage root of the GGUF
file (:func:`zgos.compute.model.model_hash`). Tests and benchmarks: the tiny
Gemma-3-shaped model of :mod:`zgos.compute.finetune.tiny`, built from code; its id is the
storage root of a small model card describing it. ``ModelRegistry`` registers a base model only
for the uploader of its file, so a provider publishes (uploads) the file before registering it
(:func:`publish_base_models`). Importing this module does not load torch; the models' ``load_*``
methods do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount

from zgos.compute.finetune.storage import StorageBlobStore
from zgos.compute.finetune.tinycard import TINY_LICENCE, TINY_MODEL_CARD, TINY_MODEL_HASH, TINY_NAME
from zgos.compute.model import ensure_gemma, model_hash
from zgos.core.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from zgos.compute.finetune.contracts import ModelRegistry
    from zgos.compute.finetune.train import Tokenizer
    from zgos.compute.finetune.worker import BaseModel

log = logging.getLogger(__name__)

GEMMA_NAME = "gemma-3-270m"
GEMMA_LICENCE = "Gemma Terms of Use"


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
    return GgufBaseModel(model_hash(path), path)


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


def model_content(model: BaseModel) -> Path | bytes:
    """The file whose storage root is ``model``'s id: its GGUF, or the tiny model's card."""
    if model.base_gguf is not None:
        return model.base_gguf
    if model.model_hash == TINY_MODEL_HASH:
        return TINY_MODEL_CARD
    raise ConfigError(f"no file is known for base model 0x{model.model_hash.hex()}")


def publish_base_models(offered: dict[bytes, tuple[str, str, BaseModel]], registry: ModelRegistry,
                        store: StorageBlobStore, publisher: LocalAccount) -> list[bytes]:
    """Register every offered base model not registered yet, uploading its file first
    (``ModelRegistry`` accepts a base model only from the first uploader of its root). A model
    whose file someone else uploaded first is left to them (logged). Returns the ids registered."""
    registered = []
    flow = store.client.flow
    for model_id, (name, licence, model) in offered.items():
        if registry.is_registered(model_id):
            continue
        first = flow.file_of(model_id) if flow is not None else None
        if first is not None and first.submitter.lower() != publisher.address.lower():
            log.warning("base model %s (0x%s) was first uploaded by %s: only they can register it", name,
                        model_id.hex(), first.submitter)
            continue
        content = model_content(model)
        root = store.upload_file(content) if isinstance(content, Path) else store.upload(content)
        if root != model_id:
            raise ConfigError(f"the file of base model {name} has root 0x{root.hex()}, not its id 0x{model_id.hex()}")
        registry.register_base_model(publisher, model_id, name, licence)
        registered.append(model_id)
    return registered
