"""How ``zg kv`` reads its arguments: stream aliases in the data dir, keys and values as typed,
and the one version of a transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.core.errors import ConfigError
from zgos.kv.aliases import load_aliases, resolve_stream, save_alias
from zgos.kv.cli.common import parse_key, read_arg, show_key
from zgos.kv.cli.writes import parse_read, parse_set, tx_version
from zgos.kv.spec.stream import MAX_KEY_SIZE, NO_VERSION_CHECK
from zgos.runtime.datadir import DataDir


def test_an_alias_names_its_stream_and_a_stream_id_names_itself(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path)
    stream = bytes(range(32))
    save_alias(data_dir, "notes", stream)
    save_alias(data_dir, "demo", b"\x01" * 32)
    assert load_aliases(data_dir) == {"notes": stream, "demo": b"\x01" * 32}
    assert resolve_stream(data_dir, "notes") == stream
    assert resolve_stream(data_dir, "0x" + stream.hex()) == stream
    with pytest.raises(ConfigError, match="unknown stream alias 'other'"):
        resolve_stream(data_dir, "other")
    for bad in ("0x1234", "0x" + "zz" * 32):
        with pytest.raises(ConfigError, match="not a stream id"):
            resolve_stream(data_dir, bad)
    with pytest.raises(ConfigError, match="not an alias name"):
        save_alias(data_dir, "0xabc", stream)


def test_keys_and_values_are_text_files_or_hex(tmp_path: Path) -> None:
    path = tmp_path / "value"
    path.write_bytes(b"\x00\xff")
    assert read_arg(f"@{path}", "value") == b"\x00\xff"
    assert read_arg("@@home", "value") == b"@home"
    assert parse_key("héllo") == "héllo".encode()
    assert parse_key("0x00ff", hex_key=True) == b"\x00\xff"
    with pytest.raises(ConfigError, match="cannot read the value"):
        read_arg(f"@{tmp_path / 'missing'}", "value")
    with pytest.raises(ConfigError, match=f"1 to {MAX_KEY_SIZE} bytes"):
        parse_key("")


@given(st.binary(min_size=1, max_size=40))
def test_a_key_shown_as_hex_reads_back_with_hex(key: bytes) -> None:
    assert parse_key(show_key(key, hex_key=True), hex_key=True) == key


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda text: not text.startswith("@")))
def test_a_text_key_is_its_utf8_bytes_and_shows_as_itself(text: str) -> None:
    assert parse_key(text) == text.encode()
    assert show_key(parse_key(text)) == text


def test_reads_and_sets_split_at_the_last_at_and_the_first_equals() -> None:
    assert parse_read("k@12", False) == (b"k", 12)
    assert parse_read("a@b", False) == (b"a@b", None)
    assert parse_read("k", False) == (b"k", None)
    assert parse_set("k=a=b", False) == (b"k", b"a=b")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set("novalue", False)


def test_a_transaction_has_one_version() -> None:
    assert tx_version({7}, True, 9) == 7
    assert tx_version(set(), True, 9) == 9
    assert tx_version(set(), False, 9) == NO_VERSION_CHECK
    with pytest.raises(ConfigError, match="one version"):
        tx_version({7, 8}, True, None)
