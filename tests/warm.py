"""Warm the per-machine caches the suite reads, once, before any test is timed (``make warm``).

On a fresh machine the first user of each cache pays for it: assembling the Gemma GGUF from
its package (~2 s), then beside it: its storage root
(the on-chain model id), its tensor shapes for GGUF LoRA conversion (~8 s), its
tokenizer converted for transformers (12-40 s) and its weights de-quantized to float32 for
training (~60 s). Paid here, no test pays them inside its own
timeout, and xdist workers never race to build the same cache. Every cache is keyed by the
file it describes, so a second run only checks that they are current.
"""

from __future__ import annotations

import time

from zgos.compute.finetune.gguf_lora import read_base_shapes
from zgos.compute.finetune.train import load_base_model, load_tokenizer
from zgos.compute.model import ensure_gemma, model_hash


def main() -> None:
    started = time.monotonic()
    gguf = ensure_gemma()
    model_hash(gguf)
    read_base_shapes(gguf)
    load_tokenizer(gguf)
    load_base_model(gguf)
    print(f"caches warm in {time.monotonic() - started:.1f}s (model {gguf})")


if __name__ == "__main__":
    main()
