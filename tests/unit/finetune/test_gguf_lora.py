"""PEFT adapter → GGUF LoRA conversion, on a tiny Gemma-3-shaped model (the real model and
llama.cpp are exercised in tests/e2e/test_finetune_gemma.py)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from zgos.compute.finetune.gguf_lora import (
    ADAPTER_CONFIG_FILENAME,
    ADAPTER_WEIGHTS_FILENAME,
    AdapterConversionError,
    check_gguf_adapter,
    convert_adapter_to_gguf,
)
from zgos.compute.finetune.tiny import (
    TINY_FFN,
    TINY_HEAD_DIM,
    TINY_HEADS,
    TINY_HIDDEN,
    build_tiny_model,
    build_tiny_tokenizer,
)
from zgos.compute.finetune.train import train_lora
from zgos.compute.spec.dataset import Example
from zgos.compute.spec.tasks import TrainingParams

EXAMPLES = (Example("Q: colour of the sky?\nA:", " blue"),)
PROJECTIONS = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj"}


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    tokenizer = build_tiny_tokenizer([e.text for e in EXAMPLES])
    model = build_tiny_model(len(tokenizer))
    train_lora(model, tokenizer, EXAMPLES, TrainingParams(epochs=2, lora_rank=4, lora_alpha=8), out)
    return out


def _write_tiny_base(path: Path, hidden: int = TINY_HIDDEN, arch: str = "gemma3") -> Path:
    """A GGUF with the tiny model's attention weights (shapes are all that is checked)."""
    writer = gguf.GGUFWriter(path, arch)
    q_out = TINY_HEADS * TINY_HEAD_DIM
    shapes = {
        "attn_q": (q_out, hidden),
        "attn_k": (TINY_HEAD_DIM, hidden),
        "attn_v": (TINY_HEAD_DIM, hidden),
        "attn_output": (hidden, q_out),
        "ffn_up": (TINY_FFN, hidden),
    }
    for layer in range(2):
        for name, shape in shapes.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight", np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_lora_holds_every_peft_matrix_under_its_llama_cpp_name(
    adapter_dir: Path, tmp_path: Path
) -> None:
    out = convert_adapter_to_gguf(
        adapter_dir, tmp_path / "a.gguf", base_gguf=_write_tiny_base(tmp_path / "base.gguf")
    )
    reader = gguf.GGUFReader(out)

    def field(key: str) -> object:
        f = reader.fields[key]
        value = f.parts[f.data[0]]
        return bytes(value).decode() if f.types[0] == gguf.GGUFValueType.STRING else value[0]

    assert field("general.architecture") == "gemma3"
    assert field("general.type") == "adapter"
    assert field("adapter.type") == "lora"
    assert field("adapter.lora.alpha") == 8.0
    peft = load_file(adapter_dir / ADAPTER_WEIGHTS_FILENAME)
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    assert len(tensors) == len(peft) == 2 * 4 * 2
    for layer in range(2):
        for gguf_name, hf_name in PROJECTIONS.items():
            for side, peft_side in (("a", "A"), ("b", "B")):
                key = (
                    f"base_model.model.model.layers.{layer}.self_attn.{hf_name}"
                    f".lora_{peft_side}.weight"
                )
                got = tensors[f"blk.{layer}.{gguf_name}.weight.lora_{side}"]
                assert np.array_equal(got, peft[key])
    assert not (tmp_path / "a.gguf.partial").exists()


def test_adapter_that_does_not_fit_the_base_model_is_refused(
    adapter_dir: Path, tmp_path: Path
) -> None:
    wrong_width = _write_tiny_base(tmp_path / "wide.gguf", hidden=2 * TINY_HIDDEN)
    with pytest.raises(AdapterConversionError, match="do not fit"):
        convert_adapter_to_gguf(adapter_dir, tmp_path / "a.gguf", base_gguf=wrong_width)
    llama = _write_tiny_base(tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(AdapterConversionError, match="the base model is 'llama'"):
        convert_adapter_to_gguf(adapter_dir, tmp_path / "a.gguf", base_gguf=llama)
    assert not (tmp_path / "a.gguf").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_dora": True}, "use_dora"),
        ({"use_rslora": True}, "use_rslora"),
        ({"peft_type": "IA3"}, "not LORA"),
        ({"modules_to_save": ["lm_head"]}, "whole modules"),
    ],
)
def test_unsupported_adapter_variants_are_refused(
    adapter_dir: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    variant = tmp_path / "variant"
    variant.mkdir()
    config = json.loads((adapter_dir / ADAPTER_CONFIG_FILENAME).read_text()) | change
    (variant / ADAPTER_CONFIG_FILENAME).write_text(json.dumps(config))
    (variant / ADAPTER_WEIGHTS_FILENAME).write_bytes(
        (adapter_dir / ADAPTER_WEIGHTS_FILENAME).read_bytes()
    )
    with pytest.raises(AdapterConversionError, match=message):
        convert_adapter_to_gguf(variant, tmp_path / "a.gguf")


def test_a_converted_adapter_passes_the_executor_check_and_other_files_do_not(
    adapter_dir: Path, tmp_path: Path
) -> None:
    """What a sealed executor checks before llama.cpp parses an agent's adapter."""
    base = _write_tiny_base(tmp_path / "base.gguf")
    adapter = convert_adapter_to_gguf(adapter_dir, tmp_path / "a.gguf", base_gguf=base)
    check_gguf_adapter(adapter, base)
    with pytest.raises(AdapterConversionError, match="do not fit"):
        check_gguf_adapter(adapter, _write_tiny_base(tmp_path / "wide.gguf", hidden=2 * TINY_HIDDEN))
    with pytest.raises(AdapterConversionError, match="not an adapter"):
        check_gguf_adapter(base, base)  # a model GGUF is not an adapter
    junk = tmp_path / "junk.gguf"
    for content in (b"", b"GGUF" + bytes(60), adapter.read_bytes()[:200]):
        junk.write_bytes(content)
        with pytest.raises(AdapterConversionError, match="not a readable GGUF adapter"):
            check_gguf_adapter(junk, base)
