"""``zg storage upload``, ``download`` and ``info``: files on the log layer, replicated or
(``--ec K+M``, ``zgos.storage.cli.erasure``) erasure-coded."""

from __future__ import annotations

from pathlib import Path

import typer

from zgos.cli.context import console, get_ctx
from zgos.core.errors import ConfigError
from zgos.core.units import parse_amount
from zgos.storage.cli.common import (
    node_policy,
    parse_root,
    print_upload,
    resolve_nodes,
    storage_client,
    transfer_progress,
)
from zgos.storage.cli.encryption import (
    ENCRYPTION_KEY_ENV,
    download_keys,
    run_decrypted_download,
    run_encrypted_upload,
    upload_recipient,
)
from zgos.storage.cli.erasure import download_ec, ec_nodes, parse_ec, upload_ec
from zgos.storage.client import StorageClient


def upload_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="File to upload."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Nodes that must store the file."),
    fee: str | None = typer.Option(None, "--fee", help="Fee to pay (default: exact; overpayment refunded)."),
    account: str | None = typer.Option(None, "--account", help="Account paying the fee."),
    workers: int = typer.Option(4, "--workers", min=1, max=64),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL choosing the nodes (instead of --node)."),
    ec: str | None = typer.Option(None, "--ec", help="Erasure coding K+M (e.g. 4+2) instead of replicas."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt in 0G's format before uploading."),
    encryption_key: str | None = typer.Option(
        None, "--encryption-key", help=f"v1: 32-byte AES key as hex (prefer ${ENCRYPTION_KEY_ENV}: argv is visible)."),
    to: str | None = typer.Option(None, "--to", help="v2: the recipient's public key (or a local account's address)."),
) -> None:
    """Upload PATH: anchor its data root on chain, send its segments, wait for finalization.
    Run it again to resume an interrupted upload (also an encrypted one)."""
    cli = get_ctx(ctx)
    params = parse_ec(ec) if ec is not None else None
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    fee_wei = _parse_fee(fee)
    recipient = upload_recipient(cli, encrypt, encryption_key, to)
    if recipient is not None:
        if params is not None:
            raise ConfigError("--encrypt does not combine with --ec yet", "upload encrypted files replicated")
        with storage_client(cli, node, account, workers, indexer, replicas) as client:
            run_encrypted_upload(cli, client, path, recipient, fee_wei, replicas)
        return
    if params is not None:
        upload_ec(cli, path, params, ec_nodes(cli, node, indexer), node_policy(cli, node), account, workers, fee_wei)
        return
    with storage_client(cli, node, account, workers, indexer, replicas) as client:
        _upload_plain(client, path, fee_wei, replicas)


def _upload_plain(client: StorageClient, path: Path, fee: int | None, replicas: int) -> None:
    from zgos.storage.hasher import build_file_tree

    with transfer_progress() as progress:
        hashing = progress.add_task("hashing", total=None)
        tree = build_file_tree(path)
        progress.remove_task(hashing)
        task = progress.add_task("uploading", total=tree.size * replicas)
        result = client.upload(path, fee=fee, replicas=replicas, tree=tree, progress=lambda n: progress.advance(task, n))
    print_upload(result, replicas)


def _parse_fee(fee: str | None) -> int | None:
    try:
        return None if fee is None else parse_amount(fee)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def download_command(
    ctx: typer.Context,
    root: str = typer.Argument(..., help="Data root (0x...)."),
    out: Path = typer.Argument(..., help="Where to write the file."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    workers: int = typer.Option(4, "--workers", min=1, max=64),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL locating the file (instead of --node)."),
    encryption_key: str | None = typer.Option(
        None, "--encryption-key", help=f"Decrypt a v1 file with this key (prefer ${ENCRYPTION_KEY_ENV} and --decrypt)."),
    decrypt: bool = typer.Option(False, "--decrypt", help=f"Decrypt: v2 with the account's key, v1 with ${ENCRYPTION_KEY_ENV}."),
    account: str | None = typer.Option(None, "--account", help="Account whose key decrypts a v2 file."),
) -> None:
    """Download ROOT to OUT, verifying every segment; OUT is written only when all verified.
    Without --decrypt/--encryption-key an encrypted file is written as stored (header + ciphertext)."""
    cli = get_ctx(ctx)
    data_root = parse_root(root)
    policy = node_policy(cli, node)
    keys = download_keys(cli, encryption_key, decrypt, account)
    if keys is not None:
        with StorageClient(resolve_nodes(cli, node, indexer, data_root), cli.chain(), cli.deployment().address("Flow"),
                           workers=workers, policy=policy) as client:
            run_decrypted_download(client, data_root, out, keys)
        return
    size = download_ec(cli, data_root, out, ec_nodes(cli, node, indexer), policy, workers)
    if size is not None:
        console.print(f"downloaded {size} bytes to {out} (erasure-coded; verified against 0x{data_root.hex()})")
        return
    nodes = resolve_nodes(cli, node, indexer, data_root)
    with StorageClient(nodes, cli.chain(), cli.deployment().address("Flow"), workers=workers, policy=policy) as client, \
            transfer_progress() as progress:
        task = progress.add_task("downloading", total=client.size_of(data_root))
        file = client.download(data_root, out, progress=lambda n: progress.advance(task, n))
    console.print(f"downloaded {file.size} bytes to {out} (verified against 0x{data_root.hex()}; size from the chain)")


def info_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Data root (0x...) or tx seq."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL."),
) -> None:
    """Show what the nodes know about a file: seq, size, placement, finalization."""
    cli = get_ctx(ctx)
    with StorageClient(resolve_nodes(cli, node), policy=node_policy(cli, node)) as client:
        location = client.info(seq=int(key)) if key.isdigit() else client.info(parse_root(key))
        tx = location.info["tx"]
        console.print(f"root       {tx['dataMerkleRoot']}")
        console.print(f"txSeq      {tx['seq']}")
        console.print(f"size       {tx['size']} bytes")
        console.print(f"start      sector {tx['startEntryIndex']}")
        console.print(f"finalized  {location.info['finalized']} (on {location.node})")
        console.print(f"segments   {location.info['uploadedSegNum']} uploaded")
