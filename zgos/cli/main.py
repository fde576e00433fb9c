"""``zg``: the command line of zgos. A thin layer over the Python API; no protocol logic here.

Each command group lives beside its network (``zgos/<network>/cli``; the chain's, the devnet's
and the explorer's in this package) and is imported only
when it is invoked (``LazyGroup``): ``zg --help`` loads none of them, so ``zg`` starts at once
(``zg version`` does not even load this module: :mod:`zgos.cli.entry`). Errors a user can act on
are printed as one line (plus a hint) with exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from typer import _click as click  # typer vendors click: its commands and contexts are these
from typer.core import TyperGroup

from zgos import version_text
from zgos.cli.context import CliContext, console, err_console
from zgos.core.errors import ZgError
from zgos.runtime.datadir import DataDir


@dataclass(frozen=True)
class CommandGroup:
    """Where a group's Typer app lives (``module:attribute``) and its one-line help for ``zg --help``."""

    target: str
    help: str


COMMAND_GROUPS = {
    "chain": CommandGroup("zgos.cli.chain:chain_app", "The EVM chain: status and contract deployment."),
    "account": CommandGroup("zgos.cli.chain:account_app", "Accounts: keystores, balances, devnet faucet."),
    "devnet": CommandGroup("zgos.cli.devnet:devnet_app", "The one-command local network."),
    "network": CommandGroup("zgos.cli.network:network_app", "Join an existing network (any EVM chain with zgos deployed)."),
    "explorer": CommandGroup("zgos.cli.explorer:app", "The explorer: network state in a browser."),
    "storage": CommandGroup("zgos.storage.cli:storage_app", "Storage: run a node, upload and download files (0G-compatible)."),
    "kv": CommandGroup("zgos.kv.cli:kv_app", "KV streams: a key-value store replayed from the storage log (0G-compatible)."),
    "compute": CommandGroup("zgos.compute.cli:app", "Compute: paid, signed, verifiable inference."),
    "da": CommandGroup("zgos.da.cli:app", "Data availability: erasure-coded blobs, KZG cells, BLS certificates."),
    "finetune": CommandGroup("zgos.compute.finetune.cli:app", "Fine-tuning: LoRA on a provider, sealed deliverables, lineage on chain."),
    "inft": CommandGroup("zgos.compute.cli.agents:inft_app", "Agent NFTs (ERC-7857): encrypted agents that change hands with the token."),
    "alignment": CommandGroup("zgos.alignment.cli:alignment_app", "Alignment: operators' bonds, auditors' findings, scores and slashes."),
    "auditor": CommandGroup("zgos.alignment.auditor.cli:auditor_app", "Auditors: probe providers, spot-check and challenge storage nodes, report."),
    "provenance": CommandGroup("zgos.provenance.cli:app", "Provenance: response → model → fine-tune → dataset → uploader, verified."),
    "tour": CommandGroup("zgos.tour.cli:tour_app", "A guided tour of the whole promise on a running devnet."),
}


def load_group(name: str) -> TyperGroup:
    """The click group of command group ``name``, importing its module now (a group even when
    it has one command, as ``add_typer`` makes it: ``zg explorer serve``)."""
    module, attribute = COMMAND_GROUPS[name].target.split(":")
    group = typer.main.get_group(getattr(importlib.import_module(module), attribute))
    group.name = name
    return group


# Options of the root group that every command accepts anywhere on its command line
# (``zg storage upload --rpc-url URL FILE`` as well as ``zg --rpc-url URL storage upload FILE``).
GLOBAL_VALUE_OPTIONS = ("--data-dir", "--rpc-url", "--deployment")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options (``GLOBAL_VALUE_OPTIONS``, as ``--opt VALUE`` or
    ``--opt=VALUE``) moved before the command, where the root group reads them; nothing after
    ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            rest += args[index:]
            break
        if word.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS and ("=" in word or index + 1 < len(args)):
            take = 1 if "=" in word else 2
            front += args[index:index + take]
            index += take
            continue
        rest.append(word)
        index += 1
    return front + rest


class LazyGroup(TyperGroup):
    """The root group: lists every command group from ``COMMAND_GROUPS`` without importing it,
    and imports a group only when it is invoked. The global options may follow the command
    (``hoist_global_options``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMAND_GROUPS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMAND_GROUPS:  # a stand-in, for the help listing
            return TyperGroup(name=cmd_name, help=COMMAND_GROUPS[cmd_name].help)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMAND_GROUPS:
            command = load_group(name)
        return name, command, rest


app = typer.Typer(
    cls=LazyGroup,
    help="zgos: decentralized AI operating system (storage, DA, compute) on one EVM chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="State directory (env ZGOS_DATA_DIR; default ./.zgos/devnet)"
    ),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="Chain JSON-RPC URL (env ZGOS_RPC_URL; default: "
                                       "the network this data dir joined or runs). Accepted after any command too."),
    deployment: str | None = typer.Option(None, "--deployment", help="Deployment file or URL (default: the data "
                                          "dir's deployment.json). Accepted after any command too."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    ctx.obj = CliContext(DataDir.resolve(data_dir), rpc_url, debug, deployment)


@app.command()
def version() -> None:
    """Print the zgos version."""
    console.print(version_text())


def main() -> None:
    debug = "--debug" in sys.argv or bool(os.environ.get("ZGOS_DEBUG"))
    try:
        app()
    except ZgError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"  {exc.hint}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
        err_console.print("  run again with --debug for the traceback", highlight=False)
        sys.exit(1)

