"""``zg``: the command line of zgos. A thin layer over the Python API; no protocol logic here.

Errors a user can act on are printed as one line (plus a hint) with exit code 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from eth_account import Account
from rich.console import Console
from rich.table import Table

from zgos import __version__
from zgos.chain.accounts import (
    DEVNET_ROLES,
    PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    account_from_private_key,
    devnet_account,
    devnet_role,
    list_keystores,
    save_keystore,
)
from zgos.chain.deploy import deploy_all
from zgos.chain.networks import is_devnet
from zgos.clictx import CliContext, get_ctx
from zgos.compute.cli import app as compute_app
from zgos.compute.finetune.cli import app as finetune_app
from zgos.core.errors import ConfigError, ZgError
from zgos.core.units import format_amount, parse_amount
from zgos.da.cli import app as da_app
from zgos.datadir import DataDir
from zgos.devnet.orchestrator import Devnet, ServiceStatus
from zgos.devnet.services import DevnetOptions
from zgos.explorer import cli as explorer_cli
from zgos.provenance.cli import app as provenance_app
from zgos.storage.cli import storage_app

# Piped output is read by programs and people with wide terminals: never truncate addresses.
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 240)

app = typer.Typer(
    help="zgos: decentralized AI operating system (storage, DA, compute) on one EVM chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
chain_app = typer.Typer(help="The EVM chain: status and contract deployment.", no_args_is_help=True)
account_app = typer.Typer(help="Accounts: keystores, balances, devnet faucet.", no_args_is_help=True)
devnet_app = typer.Typer(help="The one-command local network.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(account_app, name="account")
app.add_typer(devnet_app, name="devnet")
app.add_typer(explorer_cli.app, name="explorer")
app.add_typer(storage_app, name="storage")
app.add_typer(compute_app, name="compute")
app.add_typer(da_app, name="da")
app.add_typer(finetune_app, name="finetune")
app.add_typer(provenance_app, name="provenance")


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="State directory [env ZGOS_DATA_DIR; default ./.zgos/devnet]"
    ),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="Chain JSON-RPC URL [env ZGOS_RPC_URL]"),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    ctx.obj = CliContext(DataDir.resolve(data_dir), rpc_url, debug)


@app.command()
def version() -> None:
    """Print the zgos version."""
    console.print(f"zgos {__version__}")


# --- chain ---------------------------------------------------------------------------------


@chain_app.command("status")
def chain_status(ctx: typer.Context) -> None:
    """Chain id, latest block and the deployed contracts."""
    cli = get_ctx(ctx)
    chain = cli.chain()
    console.print(f"rpc      {chain.rpc_url}")
    console.print(f"chain id {chain.chain_id}{' (devnet)' if is_devnet(chain.chain_id) else ''}")
    console.print(f"block    {chain.block_number()}")
    try:
        deployment = cli.deployment()
    except ConfigError as exc:
        console.print(f"contracts: none ({exc})")
        return
    table = Table("contract", "address", title=f"deployment (from block {deployment.deploy_block})")
    for name, address in deployment.addresses.items():
        table.add_row(name, address)
    console.print(table)


@chain_app.command("deploy")
def chain_deploy(
    ctx: typer.Context,
    account: str | None = typer.Option(None, "--account", help="Deployer account"),
) -> None:
    """Deploy (or complete) the zgos contract set; idempotent."""
    cli = get_ctx(ctx)
    deployer = cli.account(account, role="deployer")
    deployment = deploy_all(cli.chain(), deployer, cli.data_dir.deployment)
    console.print(f"deployed {len(deployment.addresses)} contracts -> {cli.data_dir.deployment}")


# --- accounts ------------------------------------------------------------------------------


def _password(confirm: bool) -> str:
    if secret := os.environ.get(PASSWORD_ENV):
        return secret
    if not sys.stdin.isatty():
        raise ConfigError("no keystore password", f"set {PASSWORD_ENV} when not on a terminal")
    return str(typer.prompt("keystore password", hide_input=True, confirmation_prompt=confirm))


@account_app.command("new")
def account_new(ctx: typer.Context, name: str) -> None:
    """Create a new account in an encrypted keystore."""
    keystore = get_ctx(ctx).data_dir.keystore
    account = Account.create()
    path = save_keystore(keystore, name, account, _password(confirm=True))
    console.print(f"{name} {account.address} -> {path}")


@account_app.command("import")
def account_import(ctx: typer.Context, name: str) -> None:
    """Import a private key (from ZGOS_PRIVATE_KEY or a hidden prompt) into a keystore."""
    secret = os.environ.get(PRIVATE_KEY_ENV)
    if secret is None:
        if not sys.stdin.isatty():
            raise ConfigError("no private key to import", f"set {PRIVATE_KEY_ENV}")
        secret = str(typer.prompt("private key", hide_input=True))
    account = account_from_private_key(secret)
    path = save_keystore(get_ctx(ctx).data_dir.keystore, name, account, _password(confirm=True))
    console.print(f"{name} {account.address} -> {path}")


@account_app.command("list")
def account_list(ctx: typer.Context) -> None:
    """Keystore accounts, and the devnet's role accounts."""
    cli = get_ctx(ctx)
    table = Table("name", "address", "source")
    for name, address in list_keystores(cli.data_dir.keystore).items():
        table.add_row(name, address, "keystore")
    for role, index in DEVNET_ROLES.items():
        table.add_row(f"devnet:{index}", devnet_account(index).address, f"devnet {role}")
    console.print(table)


def _address(cli: CliContext, who: str | None) -> str:
    if who is None:
        return devnet_role("user").address
    if who.startswith("0x") and len(who) == 42:
        return who
    if who.startswith("devnet:"):
        return devnet_account(int(who.removeprefix("devnet:"))).address
    known = list_keystores(cli.data_dir.keystore)
    if who in known:
        return known[who]
    raise ConfigError(f"not an address or account name: {who!r}", "see `zg account list`")


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@account_app.command("balance")
def account_balance(
    ctx: typer.Context,
    who: str | None = typer.Argument(None, help="Address, keystore name or devnet:N"),
) -> None:
    """Native balance of an account (default: the devnet demo user)."""
    cli = get_ctx(ctx)
    address = _address(cli, who)
    console.print(f"{address} {format_amount(cli.chain().balance(address))}")


@account_app.command("fund")
def account_fund(ctx: typer.Context, who: str, amount: str) -> None:
    """Send AMOUNT (e.g. 10 or '0.5 0G') from the devnet faucet to WHO."""
    cli = get_ctx(ctx)
    chain = cli.chain()
    if not is_devnet(chain.chain_id):
        raise ConfigError("the faucet exists only on the devnet (chain id 31337)")
    address = _address(cli, who)
    receipt = chain.transact(devnet_role("deployer"), to=address, value=_amount(amount))
    console.print(f"funded {address} with {format_amount(_amount(amount))} (tx {receipt.tx_hash})")


# --- devnet --------------------------------------------------------------------------------


def _status_table(rows: list[ServiceStatus]) -> Table:
    table = Table("service", "url", "pid", "status")
    for row in rows:
        colour = {"healthy": "green", "stopped": "red"}.get(row.state, "yellow")
        table.add_row(row.name, row.url, str(row.pid or "-"), f"[{colour}]{row.state}[/]")
    return table


@devnet_app.command("up")
def devnet_up(
    ctx: typer.Context,
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once healthy."),
    storage_nodes: int = typer.Option(1, "--storage-nodes", min=1, max=8, help="Storage nodes (`make up` starts 3)."),
    shards: int = typer.Option(1, "--shards", min=1, help="Storage shards (power of two): node i holds shard i % SHARDS."),
    block_time: float = typer.Option(1.0, "--block-time", min=0.1, help="Seconds per block."),
    chain_port: int = typer.Option(8545, "--chain-port"),
    port_offset: int = typer.Option(0, "--port-offset", help="Added to every service port but the chain's."),
    only: str = typer.Option("", "--only", metavar="GROUPS",
                             help="Start only these service groups and the ones they need, e.g. "
                                  "`--only storage,da` (a wrong name lists the groups)."),
) -> None:
    """Start the chain, deploy the contracts and start every service (or the `--only` groups)."""
    cli = get_ctx(ctx)
    if shards & (shards - 1) or shards > storage_nodes:
        raise ConfigError(f"--shards {shards} must be a power of two and at most --storage-nodes ({storage_nodes})",
                          "e.g. `zg devnet up --storage-nodes 8 --shards 4`")
    options = DevnetOptions(
        chain_port=chain_port,
        block_time_s=block_time,
        storage_nodes=storage_nodes,
        shards=shards,
        port_offset=port_offset,
        only=tuple(name.strip() for name in only.split(",") if name.strip()),
    )
    devnet = Devnet(cli.data_dir, options)
    devnet.services()  # an unknown group is an error before anything starts
    started = time.monotonic()
    try:
        with console.status("starting devnet") as spinner:
            rows = devnet.up(progress=lambda text: spinner.update(text))
    except KeyboardInterrupt:  # Ctrl-C while services start: stop what started, cleanly
        devnet.down()
        console.print("devnet stopped (interrupted while starting)")
        return
    except ZgError:
        devnet.down()
        raise
    console.print(_status_table(rows))
    console.print(f"devnet up in {time.monotonic() - started:.1f}s; data dir {cli.data_dir.root}")
    if detach:
        console.print("stop it with `zg devnet down`")
        return
    console.print("Ctrl-C stops everything")
    devnet.watch()
    console.print("devnet stopped")


@devnet_app.command("down")
def devnet_down(ctx: typer.Context) -> None:
    """Stop every service (state is kept; `up` resumes it)."""
    stopped = Devnet(get_ctx(ctx).data_dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@devnet_app.command("status")
def devnet_status(ctx: typer.Context) -> None:
    """Every service with its URL and health."""
    cli = get_ctx(ctx)
    if cli.data_dir.read_network() is None:
        raise ConfigError(f"no devnet in {cli.data_dir.root}", "start one with `zg devnet up`")
    console.print(_status_table(Devnet(cli.data_dir).status()))


@devnet_app.command("stop")
def devnet_stop(ctx: typer.Context, name: str) -> None:
    """Stop one service (fault drills)."""
    devnet = Devnet(get_ctx(ctx).data_dir)
    devnet.service(name)
    console.print(f"{name}: {'stopped' if devnet.stop(name) else 'was not running'}")


@devnet_app.command("start")
def devnet_start(ctx: typer.Context, name: str) -> None:
    """Start one service again and wait until it is healthy."""
    devnet = Devnet(get_ctx(ctx).data_dir)
    pid = devnet.start(devnet.service(name))
    console.print(f"{name}: running (pid {pid})")


@devnet_app.command("logs")
def devnet_logs(
    ctx: typer.Context,
    name: str,
    lines: int = typer.Option(50, "--lines", "-n"),
    follow: bool = typer.Option(False, "--follow", "-f"),
) -> None:
    """Show the end of one service's log."""
    cli = get_ctx(ctx)
    Devnet(cli.data_dir).service(name)
    path = cli.data_dir.logs / f"{name}.log"
    if not path.exists():
        raise ConfigError(f"{name} has no log yet ({path})")
    with open(path, "rb") as handle:
        for line in handle.readlines()[-lines:]:
            sys.stdout.write(line.decode(errors="replace"))
        while follow:
            chunk = handle.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.2)


@devnet_app.command("reset")
def devnet_reset(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y")) -> None:
    """Stop everything and delete the devnet's data dir."""
    cli = get_ctx(ctx)
    if not yes and not typer.confirm(f"delete {cli.data_dir.root}?"):
        raise typer.Exit(1)
    Devnet(cli.data_dir).reset()
    console.print(f"deleted {cli.data_dir.root}")


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


if __name__ == "__main__":
    main()
