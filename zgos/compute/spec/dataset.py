"""Fine-tuning datasets: the accepted formats and the checks run before any fee is taken.

A dataset is UTF-8 text holding either one JSON array of examples or JSON Lines (one example
object per line). An example is ``{"text": "..."}`` (trained on whole) or
``{"prompt": "...", "completion": "..."}`` (trained on the completion only). 0G accepts a
HuggingFace ``save_to_disk`` directory or JSON and counts tokens of every leaf
(reference/compute.md §5.2 step 3); zgos accepts exactly the two shapes above, so what is
priced is what is trained.

Every rejection raises :class:`InvalidDataset` (or :class:`DatasetOverQuota`) with a message
that names the line or example at fault. Both the user's client and the provider run these
checks before a task is created or accepted, so a bad dataset never costs a fee.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zgos.core.errors import ZgError

DEFAULT_MAX_DATASET_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_EXAMPLES = 10_000
DEFAULT_MAX_TOKENS = 1_000_000
MAX_FIELD_CHARS = 32_768


class InvalidDataset(ZgError):
    """The dataset is empty, not JSON/JSONL, or has an example of the wrong shape."""


class DatasetOverQuota(InvalidDataset):
    """The dataset is larger than the provider's quota (bytes, examples or tokens)."""


@dataclass(frozen=True)
class DatasetQuota:
    """The largest dataset a provider service accepts."""

    max_bytes: int = DEFAULT_MAX_DATASET_BYTES
    max_examples: int = DEFAULT_MAX_EXAMPLES
    max_tokens: int = DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class Example:
    """One training example: the loss is taken on ``completion`` only (``prompt`` may be "")."""

    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def _decode_example(obj: Any, where: str) -> Example:
    if not isinstance(obj, dict):
        raise InvalidDataset(
            f"{where}: an example must be a JSON object, got {type(obj).__name__}",
            'use {"text": ...} or {"prompt": ..., "completion": ...}',
        )
    keys = set(obj)
    if keys == {"text"}:
        prompt, completion = "", obj["text"]
    elif keys == {"prompt", "completion"}:
        prompt, completion = obj["prompt"], obj["completion"]
    else:
        raise InvalidDataset(
            f"{where}: unexpected keys {sorted(keys)}",
            'use {"text": ...} or {"prompt": ..., "completion": ...}',
        )
    for name, value in (("prompt", prompt), ("completion", completion)):
        if not isinstance(value, str):
            raise InvalidDataset(f"{where}: {name or 'text'} must be a string")
        if len(value) > MAX_FIELD_CHARS:
            raise DatasetOverQuota(f"{where}: a field is longer than {MAX_FIELD_CHARS} characters")
    if not completion.strip():
        raise InvalidDataset(f"{where}: the text to train on is empty")
    return Example(prompt=prompt, completion=completion)


def _decode_json_lines(text: str) -> list[tuple[Any, str]]:
    items: list[tuple[Any, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append((json.loads(line), f"line {number}"))
        except json.JSONDecodeError as exc:
            raise InvalidDataset(
                f"line {number} is not valid JSON: {exc.msg}",
                "the dataset must be a JSON array or JSON Lines (one object per line)",
            ) from None
    return items


def validate_dataset_size(size: int, quota: DatasetQuota) -> None:
    """Raise :class:`DatasetOverQuota` when a dataset of ``size`` bytes exceeds ``quota.max_bytes``.

    The provider applies it to the size the chain records for the dataset's root (its Flow
    submission) before fetching a byte of it, so a task naming a huge root costs nothing."""
    if size > quota.max_bytes:
        raise DatasetOverQuota(f"the dataset is {size} bytes, over the quota of {quota.max_bytes} bytes")


def parse_dataset(data: bytes, quota: DatasetQuota | None = None) -> tuple[Example, ...]:
    """Decode and check a dataset; raise :class:`InvalidDataset` / :class:`DatasetOverQuota`.

    Rules: at most ``quota.max_bytes`` bytes, valid UTF-8, a JSON array of examples or JSON
    Lines, at least one and at most ``quota.max_examples`` examples, each of a valid shape.
    """
    quota = quota or DatasetQuota()
    validate_dataset_size(len(data), quota)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"the dataset is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InvalidDataset("the dataset is empty", "add at least one example")
    if text.lstrip().startswith("["):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidDataset(
                f"the dataset is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from None
        items = [(obj, f"example {i}") for i, obj in enumerate(decoded)]
    else:
        items = _decode_json_lines(text)
    if not items:
        raise InvalidDataset("the dataset is empty", "add at least one example")
    if len(items) > quota.max_examples:
        raise DatasetOverQuota(
            f"the dataset has {len(items)} examples, over the quota of {quota.max_examples}"
        )
    return tuple(_decode_example(obj, where) for obj, where in items)


def validate_token_count(tokens: int, quota: DatasetQuota) -> None:
    """Raise :class:`DatasetOverQuota` when ``tokens`` exceeds ``quota.max_tokens``."""
    if tokens > quota.max_tokens:
        raise DatasetOverQuota(
            f"the dataset has {tokens} tokens, over the quota of {quota.max_tokens} tokens"
        )


def encode_dataset(examples: tuple[Example, ...]) -> bytes:
    """Encode examples as JSON Lines, the inverse of :func:`parse_dataset`."""
    lines = []
    for example in examples:
        obj = (
            {"prompt": example.prompt, "completion": example.completion}
            if example.prompt
            else {"text": example.completion}
        )
        lines.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")
