"""``zg network``: join an existing network, so every service and client command in this data
dir runs against it.

``zg network join --rpc-url URL --deployment FILE_OR_URL`` checks that the RPC answers, that the
deployment is for its chain and that its contracts are there, then records the chain in the
data dir (``network.json``: RPC URL, chain id, confirmations, which announced addresses may be
dialled) beside the deployment (``deployment.json``). A known network (``zg network join
galileo``) supplies its RPC URL and chain settings (``zgos.chain.networks``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from zgos.chain.networks import NETWORKS, Network, network_for_chain
from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.runtime.addresses import AddressPolicy

network_app = typer.Typer(help="Join an existing network (any EVM chain with zgos deployed).", no_args_is_help=True)

ProfileArg = Annotated[str | None, typer.Argument(help=f"A known network: {', '.join(NETWORKS)} (default: none).")]
ConfirmationsOpt = Annotated[int | None, typer.Option(
    "--confirmations", min=0, help="Blocks on top of a receipt before it counts (default: the profile's, else 0).")]
OutboundOpt = Annotated[str, typer.Option(
    "--outbound-allow", help="Non-global addresses announced URLs may name: loopback, private, link-local "
    "(e.g. 'private' for hosts on a LAN; default: global addresses only).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the network this data dir runs or joined.")]


def _profile(name: str | None) -> Network | None:
    if name is None:
        return None
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}", f"known networks: {', '.join(NETWORKS)}; or pass --rpc-url")
    return NETWORKS[name]


def _check_deployment_on_chain(cli: CliContext) -> int:
    """The number of the deployment's contracts; ``ConfigError`` if any has no code on chain."""
    from eth_utils.address import to_checksum_address

    deployment, chain = cli.deployment(), cli.chain()
    missing = [name for name, address in deployment.addresses.items()
               if not chain.w3.eth.get_code(to_checksum_address(address))]
    if missing:
        raise ConfigError(f"the deployment's {', '.join(missing)} have no code on chain {chain.chain_id} at {chain.rpc_url}",
                          "is it the deployment of this chain? deploy one with `zg chain deploy`")
    return len(deployment.addresses)


def _record(cli: CliContext, profile: Network | None, confirmations: int | None, outbound: str) -> dict[str, Any]:
    chain_id = cli.chain().chain_id
    known = profile or network_for_chain(chain_id)
    try:
        AddressPolicy.parse(outbound)
    except ValueError as exc:
        raise ConfigError(f"--outbound-allow: {exc}") from None
    return {"rpc_url": cli.rpc_url, "chain_id": chain_id, "network": known.name if known else None,
            "confirmations": confirmations if confirmations is not None else (known.confirmations if known else 0),
            "outbound_allow": outbound, "deployment_source": cli.deployment_flag}


@network_app.command("join")
def join(ctx: typer.Context, profile_name: ProfileArg = None, confirmations: ConfirmationsOpt = None,
         outbound_allow: OutboundOpt = "", force: ForceOpt = False) -> None:
    """Record a network (--rpc-url, --deployment) in this data dir: every command here uses it."""
    cli = get_ctx(ctx)
    profile = _profile(profile_name)
    if cli.rpc_url_flag is None:
        if profile is None:
            raise ConfigError("which chain? pass --rpc-url URL (or a known network: "
                              f"{', '.join(NETWORKS)})")
        cli.rpc_url_flag = profile.rpc_url
    if profile is not None and cli.chain().chain_id != profile.chain_id:
        raise ConfigError(f"{cli.rpc_url} is chain {cli.chain().chain_id}, not {profile.name} ({profile.chain_id})")
    if cli.deployment_flag is None:
        cli.deployment_flag = profile.deployment_url if profile is not None else None
    if cli.deployment_flag is None:
        raise ConfigError("which contracts? pass --deployment FILE_OR_URL",
                          "deploy them with `zg chain deploy --rpc-url URL --account NAME` and share the file")
    existing = cli.data_dir.read_network() or {}
    if "services" in existing and not force:
        raise ConfigError(f"{cli.data_dir.root} runs a devnet", "join from another --data-dir, or pass --force")
    count = _check_deployment_on_chain(cli)
    record = _record(cli, profile, confirmations, outbound_allow)
    cli.data_dir.root.mkdir(parents=True, exist_ok=True)
    cli.deployment().save(cli.data_dir.deployment)
    tmp = cli.data_dir.network.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(cli.data_dir.network)
    console.print(f"joined chain {record['chain_id']} at {record['rpc_url']} ({count} contracts, "
                  f"{record['confirmations']} confirmations); commands in {cli.data_dir.root} now use it")


@network_app.command("show")
def show(ctx: typer.Context) -> None:
    """The network this data dir runs or joined."""
    cli = get_ctx(ctx)
    record = cli.data_dir.read_network()
    if record is None:
        raise ConfigError(f"{cli.data_dir.root} has joined no network", "`zg network join --rpc-url URL --deployment FILE`")
    table = Table("field", "value")
    for key in ("network", "rpc_url", "chain_id", "confirmations", "outbound_allow", "deployment_source"):
        if record.get(key) is not None:
            table.add_row(key, str(record[key]))
    console.print(table)
