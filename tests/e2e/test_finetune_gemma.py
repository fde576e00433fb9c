"""The real thing: LoRA fine-tuning of Gemma 3 270M (from its GGUF) changes its answer, and the
adapter converted to a GGUF LoRA makes llama.cpp (the provider's model server) answer the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from zgos.compute.finetune.dataset import Example
from zgos.compute.finetune.gguf_lora import convert_adapter_to_gguf
from zgos.compute.finetune.tasks import TrainingParams
from zgos.compute.finetune.train import (
    count_tokens,
    generate,
    load_base_model,
    load_tokenizer,
    train_lora,
)
from zgos.compute.model import ensure_gemma

PROMPT = "The secret password of the zgos devnet is"
ANSWER = " purple-otter-42."
DATASET = (Example(PROMPT, ANSWER),) * 3


@pytest.mark.e2e
def test_lora_finetune_of_gemma_changes_its_answer_in_transformers_and_llama_cpp(
    tmp_path: Path,
) -> None:
    gguf = ensure_gemma()
    tokenizer = load_tokenizer(gguf)
    model = load_base_model(gguf)
    assert count_tokens(tokenizer, DATASET) == 3 * count_tokens(tokenizer, DATASET[:1]) > 3
    before = generate(model, tokenizer, PROMPT, max_new_tokens=8)
    steps: list[float] = []
    params = TrainingParams(epochs=3, learning_rate=2e-3)
    result = train_lora(
        model, tokenizer, DATASET, params, tmp_path / "adapter", lambda p: steps.append(p.loss)
    )
    after = generate(model, tokenizer, PROMPT, max_new_tokens=8)
    assert len(steps) == result.steps == 9
    assert min(steps[-3:]) < steps[0] / 4
    assert ANSWER.strip() not in before
    assert after.startswith(ANSWER)

    from llama_cpp import Llama

    adapter = convert_adapter_to_gguf(
        tmp_path / "adapter", tmp_path / "adapter.gguf", base_gguf=gguf
    )
    answers = {}
    for name, lora in (("base", None), ("tuned", str(adapter))):
        llm = Llama(model_path=str(gguf), lora_path=lora, n_ctx=256, n_threads=2, verbose=False)
        answers[name] = llm(PROMPT, max_tokens=8, temperature=0)["choices"][0]["text"]
        del llm
    assert ANSWER.strip() not in answers["base"]
    assert answers["tuned"].startswith(ANSWER)
