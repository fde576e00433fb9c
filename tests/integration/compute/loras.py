"""GGUF LoRA adapters for the real Gemma base, made in the test (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFType, GGUFWriter, Keys

from zgos.compute.finetune.gguf_lora import read_base_shapes


def write_lora(path: Path, base_gguf: Path, scale: float, rank: int = 4) -> Path:
    """A GGUF LoRA for ``base_gguf`` on every layer's query projection; B = 0 when ``scale``
    is 0 (the base model's own answers), otherwise random weights that change them."""
    _, shapes = read_base_shapes(base_gguf)
    rng = np.random.default_rng(7)
    writer = GGUFWriter(path, "gemma3")
    writer.add_type(GGUFType.ADAPTER)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, float(rank))
    for name in sorted(n for n in shapes if n.endswith(".attn_q.weight")):
        out_features, in_features = shapes[name]
        writer.add_tensor(f"{name}.lora_a", rng.standard_normal((rank, in_features), dtype=np.float32))
        writer.add_tensor(f"{name}.lora_b", scale * rng.standard_normal((out_features, rank), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
