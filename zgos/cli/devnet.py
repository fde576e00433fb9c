"""``zg devnet``: the one-command local network (up, down, status, one service's stop, start
and logs, reset)."""

from __future__ import annotations

import sys
import time

import typer
from rich.table import Table

from zgos.cli.context import console, get_ctx
from zgos.core.errors import ConfigError, ZgError
from zgos.devnet.orchestrator import Devnet, ServiceStatus
from zgos.runtime.datadir import DataDir
from zgos.runtime.ports import CHAIN_PORT
from zgos.runtime.service import DEFAULT_DA_SIGNERS, DevnetOptions

devnet_app = typer.Typer(help="The one-command local network.", no_args_is_help=True)

MAX_STORAGE_NODES = 8  # the devnet's roles hold accounts for 8 storage nodes (chain.networks.DEVNET_ROLES)
MAX_DA_SIGNERS = 16


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
    storage_nodes: int = typer.Option(1, "--storage-nodes", min=1, max=MAX_STORAGE_NODES,
                                      help="Storage nodes (`make up` starts 3)."),
    shards: int = typer.Option(1, "--shards", min=1, help="Storage shards (power of two): node i holds shard i % SHARDS."),
    block_time: float = typer.Option(1.0, "--block-time", min=0.1, help="Seconds per block."),
    chain_port: int = typer.Option(CHAIN_PORT, "--chain-port"),
    port_offset: int = typer.Option(0, "--port-offset", help="Added to every service port but the chain's."),
    only: str = typer.Option("", "--only", metavar="GROUPS",
                             help="Start only these service groups and the ones they need, e.g. "
                                  "`--only storage,da` (a wrong name lists the groups)."),
    mine: bool = typer.Option(True, "--mine/--no-mine", help="Storage node 0 mines (PoRA) at a small CPU budget."),
    da_signers: int = typer.Option(DEFAULT_DA_SIGNERS, "--da-signers", min=1, max=MAX_DA_SIGNERS, help="DA signers to run."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address every service, the chain included, binds and "
                             "announces: a routable one lets other hosts join (`zg network join`)."),
) -> None:
    """Start the chain, deploy the contracts and start every service (or the `--only` groups)."""
    cli = get_ctx(ctx)
    if shards & (shards - 1) or shards > storage_nodes:
        raise ConfigError(f"--shards {shards} must be a power of two and at most --storage-nodes ({storage_nodes})",
                          "e.g. `zg devnet up --storage-nodes 8 --shards 4`")
    groups = tuple(name.strip() for name in only.split(",") if name.strip())
    _check_host(host)
    devnet = Devnet(cli.data_dir, DevnetOptions(chain_port=chain_port, block_time_s=block_time, storage_nodes=storage_nodes,
                                                shards=shards, port_offset=port_offset, only=groups, mine=mine,
                                                da_signers=da_signers, host=host))
    devnet.services()  # an unknown group is an error before anything starts
    started = time.monotonic()
    rows = _start(devnet)
    if rows is None:
        return
    _print_up(rows, time.monotonic() - started, cli.data_dir, detach)
    if detach:
        console.print("stop it with `zg devnet down`")
        return
    console.print("Ctrl-C stops everything")
    devnet.watch()
    console.print("devnet stopped")


def _print_up(rows: list[ServiceStatus], took_s: float, data_dir: DataDir, detach: bool) -> None:
    console.print(_status_table(rows))
    console.print(f"devnet up in {took_s:.1f}s; data dir {data_dir.root}")
    console.print(f"take the tour{' in another terminal' if not detach else ''}: `{_zg_here(data_dir)} tour` "
                  "(upload, fine-tune, chat, verify, provenance, DA, KV, INFT; one step: --step N)")


def _check_host(host: str) -> None:
    """``--host`` must be one address other hosts can dial: not a wildcard, bindable here."""
    import socket

    from zgos.runtime.listen import is_wildcard

    if is_wildcard(host):
        raise ConfigError(f"--host {host or '0.0.0.0'} is every address; the devnet announces one",
                          "name this machine's routable address (see `ip -4 addr`)")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host.strip("[]"), 0))
    except OSError as exc:
        raise ConfigError(f"--host {host}: cannot listen there ({exc.strerror})",
                          "name an address of this machine (see `ip -4 addr`)") from None


def _zg_here(data_dir: DataDir) -> str:
    """``zg`` as a command in this data dir: with ``--data-dir`` unless it is the default one."""
    return "zg" if data_dir == DataDir.resolve() else f"zg --data-dir {data_dir.root}"


def _start(devnet: Devnet) -> list[ServiceStatus] | None:
    """``devnet.up`` behind a spinner; on Ctrl-C or an error, stop what started (None: interrupted)."""
    try:
        with console.status("starting devnet") as spinner:
            return devnet.up(progress=lambda text: spinner.update(text))
    except KeyboardInterrupt:  # Ctrl-C while services start: stop what started, cleanly
        devnet.down()
        console.print("devnet stopped (interrupted while starting)")
        return None
    except ZgError:
        devnet.down()
        raise


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
