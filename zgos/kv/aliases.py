"""Local names for KV streams: ``DATA_DIR/kv/streams.json`` maps an alias (``demo``) to a
32-byte stream id, so commands take ``demo`` where a stream id is expected.

The file is one JSON object ``{"name": "0x<64 hex digits>", ...}``, written whole through a
temporary file and a rename, so a reader never sees half of it. The aliases are this data
dir's only: a stream's id, not its alias, is what the log and other users know.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from zgos.core.errors import ConfigError
from zgos.kv.spec.stream import STREAM_ID_SIZE, parse_hex_id
from zgos.runtime.datadir import DataDir

ALIASES_FILE = Path("kv") / "streams.json"
ALIAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")  # never 0x...: that is a stream id


def aliases_path(data_dir: DataDir) -> Path:
    return data_dir.root / ALIASES_FILE


def parse_stream_id(text: str) -> bytes:
    """A stream id written as ``0x`` and 64 hex digits; ``ConfigError`` otherwise."""
    raw = parse_hex_id(text, STREAM_ID_SIZE)
    if raw is None:
        raise ConfigError(f"not a stream id: {text!r}", f"a stream id is 0x and {2 * STREAM_ID_SIZE} hex digits, "
                          "or an alias (`zg kv streams`)")
    return raw


def validate_alias_name(name: str) -> str:
    if not ALIAS_NAME.match(name):
        raise ConfigError(f"not an alias name: {name!r}",
                          "a letter or _ first, then letters, digits, _ . - (at most 64 characters)")
    return name


def load_aliases(data_dir: DataDir) -> dict[str, bytes]:
    """The aliases of ``data_dir`` (none if the file does not exist)."""
    path = aliases_path(data_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} is not a JSON object of alias -> stream id")
    return {str(name): parse_stream_id(str(value)) for name, value in record.items()}


def save_alias(data_dir: DataDir, name: str, stream_id: bytes) -> None:
    """Add (or repoint) alias ``name``."""
    aliases = {**load_aliases(data_dir), validate_alias_name(name): stream_id}
    path = aliases_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: "0x" + v.hex() for k, v in sorted(aliases.items())}, indent=2) + "\n")
    tmp.replace(path)


def resolve_stream(data_dir: DataDir, text: str) -> bytes:
    """STREAM as a command takes it: a stream id (``0x…``) or an alias of ``data_dir``."""
    if text.strip().lower().startswith("0x"):
        return parse_stream_id(text)
    aliases = load_aliases(data_dir)
    if text not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise ConfigError(f"unknown stream alias {text!r} (aliases here: {known})",
                          "pass a stream id (0x + 64 hex digits), or add one: `zg kv streams --add NAME [ID]`")
    return aliases[text]
