"""What every ``zg kv`` command shares: the KV node to ask, the stream a STREAM argument names,
keys and values as typed on the command line, and a write that reports the node's result.

KEY and VALUE are UTF-8 text; ``@FILE`` stands for the bytes of FILE (``@@`` for a text that
starts with ``@``); with ``--hex`` a KEY is hex. The KV node is ``--node URL``, else the devnet's
``kv-0`` from the data dir (never a default port another devnet may hold).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console
from zgos.core.errors import ConfigError, ZgError
from zgos.kv.aliases import resolve_stream
from zgos.kv.spec.replay import (
    ACCESS_CONTROL_PERMISSION_DENIED,
    SENDER_NO_WRITE_PERMISSION,
    VERSION_CONFLICTION,
    WRITE_PERMISSION_DENIED,
)
from zgos.kv.spec.stream import MAX_KEY_SIZE
from zgos.runtime.ports import KV_PORT

if TYPE_CHECKING:
    from zgos.kv.client import KvClient
    from zgos.kv.spec.stream import StreamData

NodeOpt = Annotated[str | None, typer.Option("--node", help="KV node URL (default: the devnet's kv-0).")]
StorageOpt = Annotated[list[str] | None, typer.Option(
    "--storage-node", help="Storage node URL for the write (repeat; default: the nodes announced on chain).")]
AccountOpt = Annotated[str | None, typer.Option("--account", help="Account signing and paying for the write.")]
HexOpt = Annotated[bool, typer.Option("--hex", help="Keys are hex (for binary keys).")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Return once submitted, before the node replays it.")]
FILE_PREFIX = "@"
SHOWN_VALUE_CHARS = 200  # `list` and `watch` cut longer values
DEFAULT_KV_URL = f"http://127.0.0.1:{KV_PORT}"


class WriteFailed(ZgError):
    """The KV node replayed the transaction with a result other than Commit."""


def kv_url(cli: CliContext, flag: str | None) -> str:
    return flag or cli.data_dir.devnet_service_url("kv-0", DEFAULT_KV_URL, "--node")


def stream_of(cli: CliContext, text: str) -> bytes:
    return resolve_stream(cli.data_dir, text)


def read_arg(text: str, what: str) -> bytes:
    """A KEY or VALUE argument: ``@FILE`` is FILE's bytes, ``@@x`` the text ``@x``, else UTF-8."""
    if text.startswith(FILE_PREFIX * 2):
        return text[1:].encode(errors="surrogateescape")
    if text.startswith(FILE_PREFIX):
        path = Path(text[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} from {path}: {exc.strerror}",
                              f"a {what} starting with @ names a file; write @@ for a leading @") from None
    return text.encode(errors="surrogateescape")  # argv bytes that are not UTF-8 come back as they were


def parse_key(text: str, hex_key: bool = False) -> bytes:
    """A KEY argument (text, ``@FILE``, or hex with ``--hex``): 1 to 2^24 - 1 bytes."""
    if hex_key and not text.startswith(FILE_PREFIX):
        try:
            key = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            raise ConfigError(f"--hex: the key {text[:40]!r} is not hex") from None
    else:
        key = read_arg(text, "key")
    if not 1 <= len(key) <= MAX_KEY_SIZE:
        raise ConfigError(f"a key is 1 to {MAX_KEY_SIZE} bytes (2^24 - 1), this one is {len(key)}")
    return key


def show_key(key: bytes, hex_key: bool = False) -> str:
    if not hex_key:
        try:
            return key.decode()
        except UnicodeDecodeError:
            pass
    return "0x" + key.hex()


def show_value(value: bytes) -> str:
    """A value on one line: its text if it is UTF-8 without control characters, else hex."""
    try:
        text = value.decode()
        shown = text if text.isprintable() else "0x" + value.hex()
    except UnicodeDecodeError:
        shown = "0x" + value.hex()
    if len(shown) > SHOWN_VALUE_CHARS:
        return f"{shown[:SHOWN_VALUE_CHARS]}... ({len(value)} bytes)"
    return shown


def out(line: str) -> None:
    """One line on stdout, flushed (no markup: keys and values are printed as they are)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def reader(cli: CliContext, node: str | None) -> KvClient:
    from zgos.kv.client import KvClient

    return KvClient(kv_url(cli, node))


def writer(cli: CliContext, node: str | None, storage_nodes: list[str] | None, account: str | None) -> KvClient:
    from zgos.kv.client import KvClient
    from zgos.storage.cli.common import storage_client

    return KvClient(kv_url(cli, node), storage_client(cli, storage_nodes, account))


def check_served(client: KvClient, stream_id: bytes) -> None:
    """``ConfigError`` unless the KV node replays ``stream_id`` (its reads would all be empty)."""
    if stream_id not in client.streams():
        raise ConfigError(f"the KV node at {client.url} does not serve stream 0x{stream_id.hex()}",
                          "see `zg kv streams`; a node serves the streams of its --streams")


def submit(client: KvClient, data: StreamData, wait: bool) -> None:
    """Write ``data``; print its tx seq and (with ``wait``) the node's result. A result other
    than Commit is a ``WriteFailed``: nothing of the transaction was applied."""
    if wait:
        for stream_id in data.stream_ids():
            check_served(client, stream_id)  # before paying for an upload no node would replay
    result = client.write(data, wait=wait)
    out(f"txSeq   {result.tx_seq}")
    if result.result is None:
        out("result  submitted (not replayed yet: `zg kv status`)")
        return
    out(f"result  {result.result}")
    if not result.committed:
        raise WriteFailed(f"transaction {result.tx_seq} was not committed: {result.result}",
                          f"nothing of it was applied; {failure_hint(result.result)}")


def failure_hint(result: str) -> str:
    """What to do about a replay result other than Commit."""
    name = result.split(":")[0]
    if name == VERSION_CONFLICTION:
        return "a key it reads or writes was written after its version: read again and retry"
    if name in (SENDER_NO_WRITE_PERMISSION, WRITE_PERMISSION_DENIED, ACCESS_CONTROL_PERMISSION_DENIED):
        return "a stream's first writer is its admin; others need `zg kv grant-writer` from an admin"
    return "see `zg kv status` and the KV node's log"


def print_fields(fields: dict[str, object]) -> None:
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        console.print(f"{name:<{width}}  {value}", highlight=False, markup=False)
