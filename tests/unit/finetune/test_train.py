"""The training worker on a tiny Gemma-3-shaped model built from a config (no weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zgos.compute.finetune.tiny import build_tiny_model, build_tiny_tokenizer
from zgos.compute.finetune.train import (
    ADAPTER_WEIGHTS_FILENAME,
    IGNORE_INDEX,
    TrainingError,
    TrainingProgress,
    _converted_once,
    _load_weights,
    _save_weights,
    count_tokens,
    encode_examples,
    generate,
    train_lora,
)
from zgos.compute.spec.dataset import Example
from zgos.compute.spec.tasks import TrainingParams, compute_training_fee

PROMPT = "Q: What is the secret word?\nA:"
ANSWER = " The secret word is zebracorn."
EXAMPLES = (Example(PROMPT, ANSWER), Example("", "Zebras are striped animals of Africa."))
FAST = TrainingParams(epochs=30, learning_rate=1e-2, lora_rank=8, lora_alpha=16)


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return build_tiny_tokenizer([e.text for e in EXAMPLES] * 3)


def test_training_reports_every_step_and_teaches_the_completion(
    tokenizer,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    model = build_tiny_model(len(tokenizer))
    before = generate(model, tokenizer, PROMPT)
    progress: list[TrainingProgress] = []
    result = train_lora(model, tokenizer, EXAMPLES, FAST, tmp_path / "adapter", progress.append)
    assert [p.step for p in progress] == list(range(1, 61))
    assert all(p.total_steps == 60 for p in progress)
    assert {p.epoch for p in progress} == set(range(30))
    assert result.losses == [p.loss for p in progress]
    first_epoch = sum(result.losses[:2])
    last_epoch = sum(result.losses[-2:])
    assert last_epoch < 0.9 * first_epoch
    after = generate(model, tokenizer, PROMPT)
    assert before != ANSWER
    assert after == ANSWER
    assert (tmp_path / "adapter" / ADAPTER_WEIGHTS_FILENAME).exists()


def test_training_is_deterministic_for_a_seed(tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    params = TrainingParams(epochs=2, learning_rate=1e-2, seed=7)
    for name in ("a", "b"):
        train_lora(build_tiny_model(len(tokenizer)), tokenizer, EXAMPLES, params, tmp_path / name)
    a = load_file(tmp_path / "a" / ADAPTER_WEIGHTS_FILENAME)
    b = load_file(tmp_path / "b" / ADAPTER_WEIGHTS_FILENAME)
    assert a.keys() == b.keys() and len(a) == 2 * 4 * 2  # A and B, 4 projections, 2 layers
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_token_count_is_what_training_sees_and_prices_the_job(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tokens = count_tokens(tokenizer, EXAMPLES)
    encoded = encode_examples(tokenizer, EXAMPLES, max_seq_tokens=512)
    assert tokens == sum(ids.shape[1] for ids, _ in encoded)
    assert compute_training_fee(tokens, epochs=3, price_per_token=10**9) == tokens * 3 * 10**9


def test_prompt_tokens_carry_no_loss(tokenizer) -> None:  # type: ignore[no-untyped-def]
    (ids, labels), (text_ids, text_labels) = encode_examples(tokenizer, EXAMPLES, 512)
    prompt_len = 1 + len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert (labels[0, :prompt_len] == IGNORE_INDEX).all()
    assert torch.equal(labels[0, prompt_len:], ids[0, prompt_len:])
    assert torch.equal(text_labels[0, 1:], text_ids[0, 1:])


def test_example_whose_completion_is_truncated_away_is_rejected(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long_prompt = Example(PROMPT * 10, ANSWER)
    with pytest.raises(TrainingError, match="no completion tokens"):
        encode_examples(tokenizer, [long_prompt], max_seq_tokens=8)


def test_a_converted_model_is_saved_beside_its_file_once_and_loads_as_the_same_tensors(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"the file the conversion describes")
    conversions = []

    def convert() -> torch.nn.Module:
        conversions.append(1)
        return build_tiny_model(vocab_size=64)

    def once() -> torch.nn.Module:
        return _converted_once(gguf, ".float32", convert, save=_save_weights, load=_load_weights)

    converted, cached = once(), once()
    assert len(conversions) == 1 and (tmp_path / "model.gguf.float32").is_dir()
    assert not list(tmp_path.glob("*.partial"))
    assert cached is not converted
    expected = converted.state_dict()
    assert {name: tensor.dtype for name, tensor in cached.state_dict().items()} == \
        {name: tensor.dtype for name, tensor in expected.items()}
    assert all(torch.equal(tensor, expected[name]) for name, tensor in cached.state_dict().items())
