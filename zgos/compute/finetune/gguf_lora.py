"""Convert a PEFT LoRA adapter into a GGUF LoRA adapter that llama.cpp loads beside its base.

A GGUF LoRA file holds, for every adapted weight ``W`` of the base model (GGUF name
``blk.N.attn_q.weight`` ...), two tensors ``<name>.lora_a`` (rank × in) and ``<name>.lora_b``
(out × rank), plus the metadata ``general.type = "adapter"``, ``adapter.type = "lora"`` and
``adapter.lora.alpha``; llama.cpp adds ``(alpha / rank) · B·A·x`` to ``W·x``. PEFT stores the same
matrices (``lora_A.weight`` is rank × in, ``lora_B.weight`` out × rank) under HuggingFace module
names, which the ``gguf`` package's tensor-name map translates for the base architecture.

Only plain LoRA is converted (no DoRA, rsLoRA, fan-in-fan-out layers, per-module ranks or
extra saved modules): anything else is refused with :class:`AdapterConversionError` instead
of producing an adapter that silently computes something else. When the base GGUF is given,
its architecture and every adapted tensor's shape are checked before writing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors.numpy import load_file

from zgos.compute.sidecar import cached_beside
from zgos.core.errors import ZgError

ADAPTER_CONFIG_FILENAME = "adapter_config.json"
ADAPTER_WEIGHTS_FILENAME = "adapter_model.safetensors"
DEFAULT_ARCH = "gemma3"
PEFT_PREFIX = "base_model.model."
PEFT_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<side>[AB])\.weight$")
LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")
GGUF_SUFFIX = {"A": "lora_a", "B": "lora_b"}


class AdapterConversionError(ZgError):
    """The adapter cannot be converted faithfully (unsupported variant, wrong base model)."""


@dataclass(frozen=True)
class LoraTensor:
    gguf_name: str  # e.g. blk.0.attn_q.weight.lora_a
    data: np.ndarray[Any, np.dtype[np.float32]]


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / ADAPTER_CONFIG_FILENAME
    if not path.exists():
        raise AdapterConversionError(f"{path} does not exist", "is this a PEFT adapter directory?")
    config: dict[str, Any] = json.loads(path.read_text())
    if config.get("peft_type") != "LORA":
        raise AdapterConversionError(f"adapter type {config.get('peft_type')!r} is not LORA")
    for flag in ("use_dora", "use_rslora", "fan_in_fan_out"):
        if config.get(flag):
            raise AdapterConversionError(f"{flag} adapters are not supported by llama.cpp LoRA")
    for name in ("rank_pattern", "alpha_pattern"):
        if config.get(name):
            raise AdapterConversionError(f"per-module {name} is not supported")
    if config.get("modules_to_save"):
        raise AdapterConversionError("adapters that save whole modules are not supported")
    return config


def compute_lora_tensors(adapter_dir: Path, arch: str = DEFAULT_ARCH) -> list[LoraTensor]:
    """The adapter's matrices under their GGUF names, as float32, in a stable order."""
    weights = load_file(adapter_dir / ADAPTER_WEIGHTS_FILENAME)
    layers = [int(m.group(1)) for key in weights for m in [LAYER_INDEX.search(key)] if m]
    name_map = gguf.get_tensor_name_map(_arch_enum(arch), max(layers, default=0) + 1)
    tensors = []
    for key in sorted(weights):
        match = PEFT_KEY.match(key)
        if match is None:
            raise AdapterConversionError(f"unexpected tensor {key!r} in the adapter")
        module = match.group("module").removeprefix(PEFT_PREFIX)
        base_name = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if base_name is None:
            raise AdapterConversionError(f"no {arch} tensor corresponds to module {module!r}")
        data = np.ascontiguousarray(weights[key], dtype=np.float32)
        tensors.append(LoraTensor(f"{base_name}.{GGUF_SUFFIX[match.group('side')]}", data))
    if not tensors:
        raise AdapterConversionError("the adapter holds no LoRA tensors")
    return tensors


def _arch_enum(arch: str) -> gguf.MODEL_ARCH:
    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return enum
    raise AdapterConversionError(f"unknown architecture {arch!r}")


def read_base_shapes(base_gguf: Path) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The architecture of a base GGUF and each tensor's shape as ``(out, in)`` rows-first.

    ``GGUFReader`` parses every metadata field, the whole vocabulary included (~8 s for Gemma's
    262k tokens), so the answer is cached beside the file.
    """

    def read() -> list[Any]:
        reader = gguf.GGUFReader(base_gguf)
        field = reader.fields[gguf.Keys.General.ARCHITECTURE]
        shapes = {t.name: [int(n) for n in reversed(t.shape)] for t in reader.tensors}
        return [bytes(field.parts[field.data[0]]).decode(), shapes]

    arch, shapes = cached_beside(base_gguf, "shapes", read)
    return str(arch), {name: tuple(shape) for name, shape in shapes.items()}


def validate_against_base(tensors: list[LoraTensor], arch: str, base_gguf: Path) -> None:
    """Raise :class:`AdapterConversionError` unless the base GGUF has ``arch`` and every
    adapted tensor with ``A`` of shape (rank, in) and ``B`` of shape (out, rank)."""
    validate_shapes_against_base({t.gguf_name: tuple(t.data.shape) for t in tensors}, arch, base_gguf)


def validate_shapes_against_base(adapter: dict[str, tuple[int, ...]], arch: str, base_gguf: Path) -> None:
    """The rule of :func:`validate_against_base` over LoRA tensor names and ``(rows, cols)`` shapes."""
    base_arch, shapes = read_base_shapes(base_gguf)
    if base_arch != arch:
        raise AdapterConversionError(f"the base model is {base_arch!r}, the adapter is {arch!r}")
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for gguf_name, shape in adapter.items():
        base_name, _, side = gguf_name.rpartition(".")
        if side not in GGUF_SUFFIX.values() or len(shape) != 2:
            raise AdapterConversionError(f"{gguf_name!r} is not a LoRA matrix")
        pairs.setdefault(base_name, {})[side] = shape
    for base_name, sides in pairs.items():
        if base_name not in shapes:
            raise AdapterConversionError(f"the base model has no tensor {base_name}")
        if set(sides) != {"lora_a", "lora_b"}:
            raise AdapterConversionError(f"{base_name} lacks one of its two LoRA matrices")
        out_features, in_features = shapes[base_name]
        (rank_a, in_a), (out_b, rank_b) = sides["lora_a"], sides["lora_b"]
        if (in_a, out_b) != (in_features, out_features) or rank_a != rank_b:
            raise AdapterConversionError(
                f"{base_name}: adapter shapes A{sides['lora_a']} B{sides['lora_b']} do not fit "
                f"the base weight ({out_features}, {in_features})"
            )


def check_gguf_adapter(adapter_gguf: Path, base_gguf: Path) -> None:
    """Raise :class:`AdapterConversionError` unless ``adapter_gguf`` is a GGUF LoRA adapter
    whose every matrix fits ``base_gguf`` (read in Python, before llama.cpp ever parses it)."""
    try:
        reader = gguf.GGUFReader(adapter_gguf)
        kind = reader.fields.get(gguf.Keys.General.TYPE)  # absent: a model, as llama.cpp reads it
        adapter_type = bytes(kind.parts[kind.data[0]]).decode() if kind is not None else gguf.GGUFType.MODEL
        arch = reader.fields[gguf.Keys.General.ARCHITECTURE]
        arch_name = bytes(arch.parts[arch.data[0]]).decode()
        shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
    except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise AdapterConversionError(f"not a readable GGUF adapter ({type(exc).__name__}: {exc})") from None
    if adapter_type != gguf.GGUFType.ADAPTER:
        raise AdapterConversionError(f"the GGUF is a {adapter_type!r}, not an adapter")
    if not shapes:
        raise AdapterConversionError("the adapter holds no LoRA tensors")
    validate_shapes_against_base(shapes, arch_name, base_gguf)


def convert_adapter_to_gguf(
    adapter_dir: Path,
    out_path: Path,
    *,
    arch: str = DEFAULT_ARCH,
    base_gguf: Path | None = None,
    name: str | None = None,
) -> Path:
    """Write the GGUF LoRA for the PEFT adapter in ``adapter_dir`` to ``out_path``.

    The file is written beside ``out_path`` and renamed into place, so a reader never sees a
    partial adapter. Raises :class:`AdapterConversionError` for unsupported adapters or, with
    ``base_gguf``, for an adapter that does not fit that base model.
    """
    config = _read_config(adapter_dir)
    tensors = compute_lora_tensors(adapter_dir, arch)
    if base_gguf is not None:
        validate_against_base(tensors, arch, base_gguf)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    writer.add_name(name or adapter_dir.name)
    for tensor in tensors:
        writer.add_tensor(tensor.gguf_name, tensor.data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out_path)
    return out_path
