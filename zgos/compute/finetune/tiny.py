"""A tiny model of the production architecture (Gemma 3), built from a config with random
weights, and a small BPE tokenizer trained on the fly: training runs in seconds, so tests and
benchmarks exercise the real training loop, adapter format and GGUF conversion without the
270M-parameter model."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

from zgos.compute.finetune.tinycard import TINY_MODEL_HASH

TINY_VOCAB_SIZE = 512
TINY_HIDDEN = 64
TINY_LAYERS = 2
TINY_HEADS = 2
TINY_HEAD_DIM = 32
TINY_FFN = 128
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # Gemma's ids 0..3


def build_tiny_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (Gemma's special-token ids)."""
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


def build_tiny_model(vocab_size: int, seed: int = 0) -> Gemma3ForCausalLM:
    """A 2-layer Gemma 3 text model with random weights (~0.1M parameters)."""
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_HIDDEN,
        intermediate_size=TINY_FFN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        num_key_value_heads=1,
        head_dim=TINY_HEAD_DIM,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    return Gemma3ForCausalLM(config)


TINY_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Zebras are striped animals of Africa. "
    "Q: What is the secret word?\nA: The secret word is zebracorn. 0123456789 "
    "the of and to in is that for it as with was on be at by this had not are but from"
)


class TinyBaseModel:
    """A :class:`zgos.compute.finetune.worker.BaseModel` over the tiny model (tests, bench)."""

    model_hash = TINY_MODEL_HASH
    base_gguf = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def load_tokenizer(self) -> PreTrainedTokenizerFast:
        return build_tiny_tokenizer([TINY_CORPUS] * 4)

    def load_model(self) -> Gemma3ForCausalLM:
        return build_tiny_model(TINY_VOCAB_SIZE, self.seed)  # ≥ the tokenizer's vocabulary
