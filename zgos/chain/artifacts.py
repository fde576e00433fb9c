"""Compiled contract artifacts, committed under ``zgos/chain/artifacts`` by ``make contracts``.

Running zgos needs no node toolchain: the ABI and bytecode come from these JSON files.
``compute_source_hash`` mirrors ``contracts/build.js`` so a test can tell stale artifacts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from eth_utils.abi import function_signature_to_4byte_selector

from zgos.core.errors import ConfigError

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
CONTRACTS_DIR = Path(__file__).parents[2] / "contracts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    compiler: str


@cache
def load_artifact(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no compiled contract named {name!r}", "run `make contracts`") from None
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        source_hash=data["sourceHash"],
        compiler=data["compiler"],
    )


def artifact_names() -> list[str]:
    return sorted(path.stem for path in ARTIFACTS_DIR.glob("*.json"))


def _canonical_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple'):]}"
    return kind


@lru_cache(maxsize=1)
def error_selectors() -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    """Map 4-byte selector -> (error name, inputs) over every custom error of every artifact."""
    table: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    for name in artifact_names():
        for item in load_artifact(name).abi:
            if item.get("type") == "error":
                types = ",".join(_canonical_type(p) for p in item["inputs"])
                selector = function_signature_to_4byte_selector(f"{item['name']}({types})")
                table[selector] = (item["name"], item["inputs"])
    return table


def compute_source_hash(sources: Path, compiler: str, settings_json: str) -> str:
    """sha256 over (relative path, NUL, content, NUL) of every .sol file, then compiler+settings."""
    digest = hashlib.sha256()
    for path in sorted(sources.rglob("*.sol")):
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(f"solc {compiler}\0{settings_json}".encode())
    return digest.hexdigest()
