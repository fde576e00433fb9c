"""The production base model of the fine-tuning worker: Gemma 3 270M from its GGUF."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel

from zgos.compute.finetune.train import (
    Tokenizer,
    base_model_gguf,
    load_base_model,
    load_tokenizer,
)


class GgufBaseModel:
    """A :class:`zgos.compute.finetune.worker.BaseModel` loaded from a GGUF file.

    ``model_hash`` is the model's on-chain id: its content root in storage (computed by the
    storage client when the GGUF is uploaded and registered in ``ModelRegistry``).
    """

    def __init__(self, model_hash: bytes, gguf_path: Path | None = None) -> None:
        self.model_hash = model_hash
        self.base_gguf: Path | None = gguf_path or base_model_gguf()

    def load_tokenizer(self) -> Tokenizer:
        assert self.base_gguf is not None
        return load_tokenizer(self.base_gguf)

    def load_model(self) -> PreTrainedModel:
        assert self.base_gguf is not None
        return load_base_model(self.base_gguf)
