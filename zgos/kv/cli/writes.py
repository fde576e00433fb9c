"""``zg kv set``, ``del``, ``grant-writer``, ``grant-admin`` and ``tx``: KV transactions, signed
and paid for by the CLI's account, uploaded to the storage nodes and tagged with their stream.

Each returns once the KV node has replayed the transaction and prints its tx seq and result
(``--no-wait``: once it is submitted). A result other than Commit (no write permission, a
stale read version...) is an error: nothing of the transaction was applied.

Who may write: anyone writes to a new stream, and its first writer becomes its admin; after
that, admins and the writers they grant (``grant-writer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from zgos.cli.context import CliContext, get_ctx
from zgos.core.errors import ConfigError
from zgos.kv.cli.common import (
    AccountOpt,
    HexOpt,
    NodeOpt,
    NoWaitOpt,
    StorageOpt,
    out,
    parse_key,
    read_arg,
    reader,
    stream_of,
    submit,
    writer,
)
from zgos.kv.cli.reads import KeyArg, StreamArg
from zgos.kv.cli.values import seal_value
from zgos.kv.spec.stream import (
    ADDRESS_SIZE,
    NO_VERSION_CHECK,
    AccessControl,
    AclOp,
    StreamData,
    StreamRead,
    StreamWrite,
    parse_hex_id,
)
from zgos.storage.cli.encryption import ENCRYPTION_KEY_ENV

AddressArg = Annotated[str, typer.Argument(help="The account's address (0x + 40 hex digits).")]


def run_write(cli: CliContext, data: StreamData, node: str | None, storage_nodes: list[str] | None,
              account: str | None, no_wait: bool) -> None:
    client = writer(cli, node, storage_nodes, account)
    try:
        submit(client, data, wait=not no_wait)
    finally:
        client.close()
        if client.storage is not None:
            client.storage.close()


def set_command(
    ctx: typer.Context, stream: StreamArg, key: KeyArg,
    value: Annotated[str, typer.Argument(help="Value: UTF-8 text, or @FILE for a file's bytes.")],
    encrypt: Annotated[bool, typer.Option("--encrypt", help="Encrypt the value in 0G's format first.")] = False,
    encryption_key: Annotated[str | None, typer.Option(
        "--encryption-key", help=f"v1: 32-byte AES key as hex (prefer ${ENCRYPTION_KEY_ENV}: argv is visible).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="v2: the recipient's public key (or a local account's address).")] = None,
    hex_key: HexOpt = False, no_wait: NoWaitOpt = False, account: AccountOpt = None,
    storage_node: StorageOpt = None, node: NodeOpt = None,
) -> None:
    """Set KEY to VALUE in STREAM (with --encrypt the KV node stores only ciphertext)."""
    cli = get_ctx(ctx)
    stream_id, key_bytes, plain = stream_of(cli, stream), parse_key(key, hex_key), read_arg(value, "value")
    if not plain and not encrypt:
        raise ConfigError("an empty value deletes the key", "use `zg kv del STREAM KEY`")
    data = seal_value(cli, plain, encrypt, encryption_key, to)
    run_write(cli, StreamData(writes=(StreamWrite(stream_id, key_bytes, data),)), node, storage_node, account, no_wait)


def del_command(ctx: typer.Context, stream: StreamArg, key: KeyArg, hex_key: HexOpt = False,
                no_wait: NoWaitOpt = False, account: AccountOpt = None, storage_node: StorageOpt = None,
                node: NodeOpt = None) -> None:
    """Delete KEY from STREAM (a write of no bytes, as 0G deletes)."""
    cli = get_ctx(ctx)
    data = StreamData(writes=(StreamWrite(stream_of(cli, stream), parse_key(key, hex_key), b""),))
    run_write(cli, data, node, storage_node, account, no_wait)


def parse_address(text: str) -> bytes:
    raw = parse_hex_id(text, ADDRESS_SIZE)
    if raw is None:
        raise ConfigError(f"not an address: {text!r}", f"an address is 0x and {2 * ADDRESS_SIZE} hex digits")
    return raw


def grant(op: AclOp, doc: str) -> Callable[..., None]:
    def command(ctx: typer.Context, stream: StreamArg, address: AddressArg, no_wait: NoWaitOpt = False,
                account: AccountOpt = None, storage_node: StorageOpt = None, node: NodeOpt = None) -> None:
        cli = get_ctx(ctx)
        control = AccessControl(op, stream_of(cli, stream), account=parse_address(address))
        run_write(cli, StreamData(controls=(control,)), node, storage_node, account, no_wait)

    command.__doc__ = doc
    return command


grant_writer_command = grant(AclOp.GRANT_WRITER, "Let ADDRESS write every key of STREAM (needs admin or writer of STREAM).")
grant_admin_command = grant(AclOp.GRANT_ADMIN, "Make ADDRESS an admin of STREAM (needs admin).")


def parse_read(text: str, hex_key: bool) -> tuple[bytes, int | None]:
    """``KEY@VERSION`` (the last ``@`` followed by digits) or ``KEY``."""
    key, at, version = text.rpartition("@")
    if at and key and version.isdigit():
        return parse_key(key, hex_key), int(version)
    return parse_key(text, hex_key), None


def parse_set(text: str, hex_key: bool) -> tuple[bytes, bytes]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE", "VALUE may be @FILE; a key with = can be @FILE")
    return parse_key(key, hex_key), read_arg(value, "value")


def tx_version(versions: set[int], reads: bool, node_version: int | None) -> int:
    """One version for the transaction: the one given (all given must agree), else with reads
    the node's current version, else none (``NO_VERSION_CHECK``)."""
    if len(versions) > 1:
        raise ConfigError(f"a transaction has one version, got {sorted(versions)}",
                          "read every key as of the same version (`zg kv get --version N`)")
    if versions:
        return versions.pop()
    return node_version if reads and node_version is not None else NO_VERSION_CHECK


def tx_command(
    ctx: typer.Context, stream: StreamArg,
    sets: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Set KEY (repeat; VALUE may be @FILE).")] = None,
    deletes: Annotated[list[str] | None, typer.Option("--del", metavar="KEY", help="Delete KEY (repeat).")] = None,
    reads: Annotated[list[str] | None, typer.Option(
        "--read", metavar="KEY[@VERSION]", help="KEY must be unchanged since VERSION (repeat).")] = None,
    version: Annotated[int | None, typer.Option("--version", min=0, help="The version for --read KEY without @.")] = None,
    hex_key: HexOpt = False, no_wait: NoWaitOpt = False, account: AccountOpt = None,
    storage_node: StorageOpt = None, node: NodeOpt = None,
) -> None:
    """Write several keys of STREAM at once, all or nothing, optionally only if what you read is
    still current (optimistic concurrency, as 0G's KV does).

    A transaction carries one VERSION: the stream's version you read at (`zg kv get
    --show-version` prints it as "read as of version N"). It commits only if no key it reads
    (--read) or writes (--set/--del) was written after VERSION; else its result is
    VersionConfliction and nothing changes. --read KEY without @VERSION takes --version, else the
    node's current version. Without --read or --version there is no version check."""
    cli = get_ctx(ctx)
    stream_id = stream_of(cli, stream)
    writes = [StreamWrite(stream_id, *parse_set(text, hex_key)) for text in sets or []]
    writes += [StreamWrite(stream_id, parse_key(text, hex_key), b"") for text in deletes or []]
    parsed = [parse_read(text, hex_key) for text in reads or []]
    if not writes:
        raise ConfigError("a transaction needs at least one --set or --del")
    if len({write.key for write in writes}) < len(writes):
        raise ConfigError("a key is written twice in one transaction", "set or delete each key once")
    given = {v for _, v in parsed if v is not None} | ({version} if version is not None else set())
    node_version = None
    if parsed and not given:
        with reader(cli, node) as client:
            node_version = client.replayed_version()
    chosen = tx_version(given, bool(parsed), node_version)
    if chosen != NO_VERSION_CHECK:
        out(f"version {chosen}")
    data = StreamData(chosen, tuple(StreamRead(stream_id, key) for key, _ in parsed), tuple(writes))
    run_write(cli, data, node, storage_node, account, no_wait)
