"""The real thing: LoRA fine-tuning of Gemma 3 270M (from its GGUF) changes its answer, and the
adapter converted to a GGUF LoRA makes llama.cpp (the provider's model server) answer the same.

The adapter is the one the provider trained for the marketplace test (the shared
``tuned_gemma`` fixture): training runs once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.e2e.conftest import ANSWER, EPOCHS, EXAMPLES, PROMPT, TunedGemma, training_progress
from zgos.compute.finetune.gguf_lora import convert_adapter_to_gguf
from zgos.compute.finetune.train import (
    count_tokens,
    encode_examples,
    generate,
    load_base_model,
    load_tokenizer,
)
from zgos.compute.model import ensure_gemma
from zgos.compute.spec.tasks import TrainingParams


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The training loss (completion tokens only) of ``model`` over ``batches``."""
    model.eval()
    return sum(float(model(input_ids=ids, labels=labels).loss) for ids, labels in batches) / len(batches)


@pytest.mark.e2e
@pytest.mark.slow
def test_lora_finetune_of_gemma_changes_its_answer_in_transformers_and_llama_cpp(
    tuned_gemma: TunedGemma, tmp_path: Path,
) -> None:
    from peft import PeftModel

    gguf = ensure_gemma()
    tokenizer = load_tokenizer(gguf)
    model = load_base_model(gguf)
    assert count_tokens(tokenizer, EXAMPLES) == 3 * count_tokens(tokenizer, EXAMPLES[:1]) > 3
    progress = training_progress(tuned_gemma)
    assert progress["step"] == progress["total_steps"] == EPOCHS * len(EXAMPLES), progress

    batches = encode_examples(tokenizer, EXAMPLES, TrainingParams().max_seq_tokens)
    before, base_loss = generate(model, tokenizer, PROMPT, max_new_tokens=8), mean_loss(model, batches)
    tuned = PeftModel.from_pretrained(model, tuned_gemma.adapter_dir)
    after, tuned_loss = generate(tuned, tokenizer, PROMPT, max_new_tokens=8), mean_loss(tuned, batches)
    assert tuned_loss < base_loss / 4, (base_loss, tuned_loss)
    assert ANSWER not in before
    assert after.startswith(ANSWER), after

    from llama_cpp import Llama

    adapter = convert_adapter_to_gguf(tuned_gemma.adapter_dir, tmp_path / "adapter.gguf", base_gguf=gguf)
    answers = {}
    for name, lora in (("base", None), ("tuned", str(adapter))):
        llm = Llama(model_path=str(gguf), lora_path=lora, n_ctx=256, n_threads=2, verbose=False)
        answers[name] = llm(PROMPT, max_tokens=8, temperature=0)["choices"][0]["text"]
        del llm
    assert ANSWER not in answers["base"]
    assert answers["tuned"].startswith(ANSWER), answers
