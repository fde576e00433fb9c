"""``zg kv get``, ``list``, ``watch``, ``status`` and ``streams``: reads from a KV node, and the
data dir's stream aliases.

Reads are as of one version of the stream (``--version N``, default: the last transaction the
node replayed), so a listing is a consistent snapshot; ``get --show-version`` prints that
version, which is what ``zg kv tx --read KEY@VERSION`` takes.
"""

from __future__ import annotations

import os
import sys
import time
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import err_console, get_ctx
from zgos.core.errors import ConfigError, ZgError
from zgos.kv.aliases import aliases_path, load_aliases, parse_stream_id, save_alias
from zgos.kv.cli.common import (
    HexOpt,
    NodeOpt,
    check_served,
    out,
    parse_key,
    print_fields,
    reader,
    show_key,
    show_value,
    stream_of,
)
from zgos.kv.cli.values import open_value
from zgos.kv.spec.stream import STREAM_ID_SIZE
from zgos.storage.cli.encryption import ENCRYPTION_KEY_ENV

if TYPE_CHECKING:
    from zgos.kv.client import KvClient

StreamArg = Annotated[str, typer.Argument(help="Stream id (0x + 64 hex digits) or alias (`zg kv streams`).")]
KeyArg = Annotated[str, typer.Argument(help="Key: UTF-8 text, @FILE, or hex with --hex.")]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Only keys starting with this (text, or hex with --hex).")]
KeyVersions = dict[bytes, tuple[int, int]]  # key -> (version that last wrote it, size; 0: deleted)


def parse_prefix(text: str, hex_key: bool) -> bytes:
    return parse_key(text, hex_key) if text else b""


def write_value(value: bytes, path: Path | None) -> None:
    """To ``path`` (whole, via a temporary file), else stdout: text with a newline, binary bytes
    only when stdout is not a terminal."""
    if path is not None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(value)
        tmp.replace(path)
        return
    try:
        out(value.decode())
    except UnicodeDecodeError:
        if sys.stdout.isatty():
            raise ConfigError(f"the value is {len(value)} bytes of binary", "write it to a file: --out FILE") from None
        sys.stdout.buffer.write(value)
        sys.stdout.flush()


def get_command(
    ctx: typer.Context, stream: StreamArg, key: KeyArg,
    version: Annotated[int | None, typer.Option("--version", min=0, help="Read as of this version.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the value to this file.")] = None,
    show_version: Annotated[bool, typer.Option("--show-version", help="Print the versions to stderr.")] = False,
    encryption_key: Annotated[str | None, typer.Option(
        "--encryption-key", help=f"Decrypt a v1 value with this key (prefer ${ENCRYPTION_KEY_ENV} and --decrypt).")] = None,
    decrypt: Annotated[bool, typer.Option(
        "--decrypt", help=f"Decrypt: v2 with the account's key, v1 with ${ENCRYPTION_KEY_ENV}.")] = False,
    account: Annotated[str | None, typer.Option("--account", help="Account whose key decrypts a v2 value.")] = None,
    hex_key: HexOpt = False, node: NodeOpt = None,
) -> None:
    """Print the value of KEY in STREAM (or write it to --out FILE); a missing key is an error."""
    cli = get_ctx(ctx)
    stream_id, key_bytes = stream_of(cli, stream), parse_key(key, hex_key)
    with reader(cli, node) as client:
        check_served(client, stream_id)
        as_of = client.replayed_version() if version is None else version
        entry = client.get(stream_id, key_bytes, as_of)
    if entry is None or not entry.data:
        gone = f" (deleted at version {entry.version})" if entry is not None else ""
        raise ConfigError(f"no key {show_key(key_bytes, hex_key)!r} in stream {stream} as of version {as_of}{gone}")
    value = open_value(cli, entry.data, encryption_key, decrypt, account)
    if show_version:
        err_console.print(f"version {entry.version} (written); read as of version {as_of}", highlight=False)
    write_value(value, out_file)


def list_command(
    ctx: typer.Context, stream: StreamArg, prefix: PrefixOpt = "",
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many keys.")] = 100,
    after: Annotated[str | None, typer.Option("--after", help="Start after this key (paging).")] = None,
    hex_key: HexOpt = False, node: NodeOpt = None,
) -> None:
    """List STREAM's keys in byte order: KEY, VERSION and VALUE, tab-separated (deleted keys
    are left out; a binary value is shown as hex, a long one cut)."""
    cli = get_ctx(ctx)
    stream_id, start = stream_of(cli, stream), None if after is None else parse_key(after, hex_key)
    with reader(cli, node) as client:
        check_served(client, stream_id)
        as_of = client.replayed_version()
        found = list(islice(client.entries(stream_id, start, parse_prefix(prefix, hex_key), as_of), limit + 1))
    for entry in found[:limit]:
        out(f"{show_key(entry.key, hex_key)}\t{entry.version}\t{show_value(entry.data)}")
    if len(found) > limit:
        err_console.print(f"more keys: --after {show_key(found[limit - 1].key, hex_key)!r}", highlight=False,
                          markup=False)


def key_versions(client: KvClient, stream_id: bytes, prefix: bytes, version: int) -> KeyVersions:
    return {key: (v, size) for key, v, size in client.key_sizes(stream_id, prefix=prefix, version=version)}


def changes(client: KvClient, stream_id: bytes, before: KeyVersions, after: KeyVersions,
            hex_key: bool) -> list[str]:
    """One line per key that changed between two snapshots: VERSION, set/del, KEY[, VALUE]."""
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new or new is None:
            continue
        version, size = new
        if size == 0:
            lines.append(f"{version}\tdel\t{show_key(key, hex_key)}")
            continue
        entry = client.get(stream_id, key, version)
        lines.append(f"{version}\tset\t{show_key(key, hex_key)}\t{show_value(entry.data if entry else b'')}")
    return lines


def watch_command(
    ctx: typer.Context, stream: StreamArg, prefix: PrefixOpt = "",
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between polls.")] = 0.5,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many changes.")] = None,
    hex_key: HexOpt = False, node: NodeOpt = None,
) -> None:
    """Print STREAM's changes as the node replays them (VERSION, set/del, KEY, VALUE; tab-
    separated; a key written twice between polls shows its latest value). Ctrl-C stops."""
    cli = get_ctx(ctx)
    stream_id, key_prefix = stream_of(cli, stream), parse_prefix(prefix, hex_key)
    printed = 0
    with reader(cli, node) as client:
        check_served(client, stream_id)
        seen_at = client.replayed_version()
        seen = key_versions(client, stream_id, key_prefix, seen_at)
        err_console.print(f"watching {stream} from version {seen_at} (Ctrl-C to stop)", highlight=False)
        try:
            while count is None or printed < count:
                time.sleep(interval)
                if (now := client.replayed_version()) == seen_at:
                    continue
                current = key_versions(client, stream_id, key_prefix, now)
                for line in changes(client, stream_id, seen, current, hex_key)[:None if count is None else count - printed]:
                    out(line)
                    printed += 1
                seen, seen_at = current, now
        except KeyboardInterrupt:
            return


def status_command(ctx: typer.Context, node: NodeOpt = None) -> None:
    """The KV node's replay progress: where it is on the log and the chain, and its results."""
    with reader(get_ctx(ctx), node) as client:
        status, served = client.status(), client.streams()
    results = status.get("results") or {}
    print_fields({
        "node": client.url, "streams": len(served), "next tx seq": status.get("nextTxSeq"),
        "next block": status.get("nextBlock"), "chain head": status.get("head"),
        "synced block": status.get("syncedBlock"), "waiting for": status.get("waiting_for") or "-",
        "errors": status.get("errors"), "last error": status.get("last_error") or "-",
        "reorgs": status.get("reorgs"),
        "results": ", ".join(f"{name} {n}" for name, n in sorted(results.items())) or "-",
    })


def streams_command(
    ctx: typer.Context,
    stream_id: Annotated[str | None, typer.Argument(help="With --add: the stream id (default: a random one).")] = None,
    add: Annotated[str | None, typer.Option("--add", metavar="NAME", help="Add alias NAME for a stream.")] = None,
    node: NodeOpt = None,
) -> None:
    """List the aliases of this data dir with their stream ids, and the streams the KV node
    serves (ALIAS, ID, served or not, tab-separated); --add NAME [ID] adds an alias."""
    cli = get_ctx(ctx)
    if add is not None:
        chosen = os.urandom(STREAM_ID_SIZE) if stream_id is None else parse_stream_id(stream_id)
        save_alias(cli.data_dir, add, chosen)
        out(f"{add}\t0x{chosen.hex()}")
        err_console.print(f"saved in {aliases_path(cli.data_dir)}; a KV node serves it once started with it in "
                          "--streams (the devnet's kv-0 after `zg devnet stop kv-0 && zg devnet start kv-0`)",
                          highlight=False)
        return
    if stream_id is not None:
        raise ConfigError("a stream id is taken only with --add NAME")
    aliases = load_aliases(cli.data_dir)
    try:
        with reader(cli, node) as client:
            served: list[bytes] | None = client.streams()
    except ZgError as exc:
        served = None
        err_console.print(f"KV node: {exc.message}", highlight=False, markup=False)
    named = set(aliases.values())
    for name, stream in [*aliases.items(), *(("-", s) for s in served or [] if s not in named)]:
        state = "?" if served is None else "served" if stream in served else "not served"
        out(f"{name}\t0x{stream.hex()}\t{state}")
