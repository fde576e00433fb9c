"""``zg da``: run DA signers and the disperser; put, get, sample and inspect blobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from zgos.chain.accounts import DEVNET_ROLES
from zgos.cli.context import CliContext, console, err_console, get_ctx
from zgos.cli.options import HOST_HELP
from zgos.core.errors import ConfigError, ZgError
from zgos.core.units import format_amount, parse_amount
from zgos.da.spec.params import SIGNER_STAKE_WEI
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import DA_DISPERSER_PORT, DA_SIGNER_PORT

if TYPE_CHECKING:
    from zgos.da.contracts import DAContracts
    from zgos.da.proto import disperser_pb2

# The DA stack (ckzg, blspy, grpc, numpy) is imported inside the commands that use it, so
# every other `zg` command starts as fast as before.


app = typer.Typer(help="Data availability: erasure-coded blobs, KZG cells, BLS certificates.", no_args_is_help=True)

DEFAULT_DISPERSER = f"127.0.0.1:{DA_DISPERSER_PORT}"
TOKEN_ENV = "ZGOS_DA_TOKEN"


def _contracts(cli: CliContext) -> DAContracts:
    from zgos.da.contracts import DAContracts

    return DAContracts.from_addresses(cli.chain(), cli.deployment().addresses)


def _blob_id(text: str) -> bytes:
    try:
        blob_id = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        blob_id = b""
    if len(blob_id) != 32:
        raise ConfigError(f"bad blob id {text!r}", "a blob id is 32 bytes of hex (0x + 64 digits)")
    return blob_id


def _disperser(cli: CliContext, flag: str | None) -> str:
    """The disperser to dial: ``--disperser``, else the one the data dir's devnet runs."""
    if flag:
        return flag
    return cli.data_dir.devnet_service_url("da-disperser", DEFAULT_DISPERSER, "--disperser").removeprefix("grpc://")


def _disperser_token(cli: CliContext, token_file: Path | None) -> str | None:
    """The disperser's install token: ``ZGOS_DA_TOKEN``, else ``--token-file``, else the file the
    data dir's disperser wrote (``da-disperser/token``); None if there is none (the disperser
    will then say what it needs). Never a flag value: argv is visible to every local user."""
    from zgos.runtime.access import TOKEN_FILE, read_token

    if env := os.environ.get(TOKEN_ENV):
        return env.strip()
    path = token_file or cli.data_dir.service("da-disperser") / TOKEN_FILE
    if token_file is None and not path.exists():
        return None
    return read_token(path)


def _started(banner: str) -> None:
    err_console.print(banner, highlight=False)


@app.command()
def signer(
    ctx: typer.Context,
    index: int = typer.Option(0, "--index", help="Signer number on this machine (port, state dir, devnet account)."),
    port: int | None = typer.Option(None, "--port", help=f"gRPC port (default {DA_SIGNER_PORT} + index)"),
    host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
    url: str | None = typer.Option(None, "--public-url", "--url", help="Address registered on chain, HOST:PORT or "
                                   "grpc://HOST:PORT (default HOST:PORT; required with a wildcard --host)"),
    account: str | None = typer.Option(None, "--account", help="Operator account (default devnet da-signer + index)"),
    stake: str = typer.Option(format_amount(SIGNER_STAKE_WEI).split()[0], "--stake", help="Stake deposit in 0G"),
    dishonest: str | None = typer.Option(None, "--dishonest", hidden=True, help="Test-only cheat (devnet only)."),
) -> None:
    """Run a DA signer: register (BLS key + stake), verify, store and sign its columns."""
    from zgos.chain.dishonest import check_dishonest_mode
    from zgos.da.signer.app import DISHONEST_MODES, SignerConfig, SignerService

    configure_service_logging()
    cli = get_ctx(ctx)
    port = DA_SIGNER_PORT + index if port is None else port
    config = SignerConfig(
        state_dir=cli.data_dir.service(f"da-signer-{index}"), host=host, port=port,
        public_url=_signer_url(host, port, url), stake_wei=parse_amount(stake),
        dishonest=check_dishonest_mode(dishonest, DISHONEST_MODES, cli.chain().chain_id),
    )
    operator = cli.account(account if account is not None else f"devnet:{DEVNET_ROLES['da-signer'] + index}", role=None)
    SignerService(config, _contracts(cli), operator).run(_started)


def _signer_url(host: str, port: int, url: str | None) -> str:
    """The address a signer registers: ``--public-url`` (``HOST:PORT``, with or without a
    ``grpc://`` scheme), else ``HOST:PORT``; a wildcard bind must name one."""
    from zgos.runtime.listen import GRPC_SCHEMES, compute_public_url

    if url is not None and "://" not in url:
        url = f"grpc://{url}"
    return compute_public_url(host, port, url, "grpc", GRPC_SCHEMES).split("://", 1)[1]


@app.command()
def disperser(
    ctx: typer.Context,
    port: int = typer.Option(DA_DISPERSER_PORT, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    account: str | None = typer.Option(None, "--account", help="Account paying blob fees (default devnet da-disperser)"),
    workers: int | None = typer.Option(None, "--workers", help="Encoder processes (default: one per CPU)"),
) -> None:
    """Run the disperser (0G's disperser gRPC API): encode, collect signatures, certify."""
    from zgos.da.disperser.app import DisperserConfig, DisperserService

    configure_service_logging()
    cli = get_ctx(ctx)
    payer = cli.account(account, role="da-disperser")
    config = DisperserConfig(state_dir=cli.data_dir.service("da-disperser"), host=host, port=port, workers=workers)
    DisperserService(config, _contracts(cli), payer, cli.outbound_policy()).run(_started)


def _status_name(code: int) -> str:
    from zgos.da.proto import disperser_pb2

    return str(disperser_pb2.BlobStatus.Name(code))  # type: ignore[arg-type]


def disperse(cli: CliContext, data: bytes, target: str | None, token_file: Path | None,
             timeout: float | None) -> disperser_pb2.BlobStatusReply | None:
    """Disperse ``data`` as one blob and print its request id; with a ``timeout``, follow it
    (a spinner with its status) until it is certified (its final status) or failed
    (``ZgError``); without one, return None at once."""
    from zgos.da.client import DisperserClient
    from zgos.da.proto import disperser_pb2

    with DisperserClient(_disperser(cli, target), token=_disperser_token(cli, token_file)) as client:
        request_id = client.disperse(data)
        console.print(f"request {request_id.decode()}")
        if timeout is None:
            return None
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console) as bar:
            task = bar.add_task("PROCESSING", total=None)
            reply = client.wait(request_id, timeout, lambda r: bar.update(
                task, description=f"{_status_name(r.status)}: {r.reason}"))
    if reply.status == disperser_pb2.FAILED:
        raise ZgError(f"dispersal failed: {reply.reason}")
    return reply


@app.command()
def put(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    target: str | None = typer.Option(None, "--disperser", help="Disperser gRPC address (default: the data "
                                      f"dir's devnet disperser, else {DEFAULT_DISPERSER})"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until certified on-chain"),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait"),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=f"The disperser's install token (default DATA_DIR/da-disperser/token; env {TOKEN_ENV})"),
) -> None:
    """Disperse FILE as one blob; prints the request id, then the blob id once certified."""
    reply = disperse(get_ctx(ctx), file.read_bytes(), target, token_file, timeout if wait else None)
    if reply is None:
        return
    header = reply.info.blob_header
    console.print(f"blob 0x{header.storage_root.hex()} {_status_name(reply.status)} epoch {header.epoch} "
                  f"quorum {header.quorum_id} certificate {reply.certificate_tx}")


@app.command()
def status(
    ctx: typer.Context,
    ident: str = typer.Argument(..., metavar="ID", help="A request id (from `put`) or a blob id"),
    target: str | None = typer.Option(None, "--disperser", help="Disperser gRPC address (default: as for put)"),
) -> None:
    """Status of a dispersal request (asks the disperser) or of a blob id (reads the chain)."""
    from zgos.da.client import DisperserClient

    if "-" in ident:
        with DisperserClient(_disperser(get_ctx(ctx), target)) as client:
            reply = client.status(ident.encode())
        console.print(f"{_status_name(reply.status)}: {reply.reason}")
        if reply.info.blob_header.storage_root:
            console.print(f"blob 0x{reply.info.blob_header.storage_root.hex()} epoch {reply.info.blob_header.epoch}")
        return
    record = _contracts(get_ctx(ctx)).blob(_blob_id(ident))
    console.print(
        f"{record.status.name} epoch {record.epoch} size {record.size} fee {format_amount(record.fee)} "
        f"submitter {record.submitter}"
    )


@app.command()
def get(
    ctx: typer.Context,
    blob: str = typer.Argument(..., metavar="BLOB_ID"),
    out: Path = typer.Argument(..., metavar="OUT"),
) -> None:
    """Fetch a certified blob from the signers, verify every cell, recover, write OUT."""
    from zgos.da.retriever import Retriever

    cli = get_ctx(ctx)
    blob_id = _blob_id(blob)
    retriever = Retriever(_contracts(cli), policy=cli.outbound_policy())
    with Progress(TextColumn("cells"), BarColumn(), TextColumn("{task.completed}"), console=err_console) as bar:
        task = bar.add_task("cells", total=None)
        data = retriever.retrieve(
            blob_id,
            progress=lambda n: bar.advance(task, n),
            on_failure=lambda f: err_console.print(f"[yellow]warning:[/] {f}", highlight=False),
        )
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    console.print(f"wrote {len(data)} bytes to {out}")


@app.command()
def sample(
    ctx: typer.Context,
    blob: str = typer.Argument(..., metavar="BLOB_ID"),
    samples: int | None = typer.Option(None, "--samples", help="Number of random cells (default 16 per row)"),
) -> None:
    """Sample random cells from the signers and verify them; exit 1 if any sample fails."""
    from zgos.da.retriever import Retriever

    cli = get_ctx(ctx)
    report = Retriever(_contracts(cli), policy=cli.outbound_policy()).sample(_blob_id(blob), samples)
    for failure in report.failures:
        err_console.print(f"[red]FAILED[/] {failure}", highlight=False)
    if report.available:
        console.print(
            f"AVAILABLE: {report.verified}/{report.samples} samples verified; "
            f"confidence {100 * report.confidence:.4f}% that every row is recoverable"
        )
        return
    raise ZgError(
        f"NOT AVAILABLE: {report.samples - report.verified} of {report.samples} samples failed "
        f"({len(report.failures)} signer(s) withheld or served bad cells)",
        "the blob may still be recoverable from the other signers: try `zg da get`",
    )


@app.command()
def quorum(ctx: typer.Context, epoch: int | None = typer.Option(None, "--epoch")) -> None:
    """The signers of an epoch, their stake and cell columns."""
    da = _contracts(get_ctx(ctx))
    chosen = da.current_epoch() if epoch is None else epoch
    q = da.quorum(chosen)
    table = Table(title=f"epoch {chosen} quorum 0")
    for column in ("signer", "url", "stake", "columns"):
        table.add_column(column)
    for member, url, stake in zip(q.members, q.urls, q.stakes, strict=True):
        table.add_row(member, url, format_amount(stake), str(len(q.columns(member))))
    console.print(table)


@app.command()
def cancel(
    ctx: typer.Context,
    blob: str = typer.Argument(..., metavar="BLOB_ID"),
    account: str | None = typer.Option(None, "--account"),
) -> None:
    """Cancel an uncertified blob you submitted and get its fee back."""
    cli = get_ctx(ctx)
    receipt = _contracts(cli).cancel_blob(cli.account(account, role="da-disperser"), _blob_id(blob))
    console.print(f"cancelled; fee refunded in {receipt.tx_hash}")
