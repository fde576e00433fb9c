"""``zg chain`` and ``zg account``: the EVM chain (status, deployment) and the accounts that
sign on it (keystores, balances, the devnet faucet)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.table import Table

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
from zgos.chain.deploy import ContractPlan, deploy_all
from zgos.chain.networks import is_devnet
from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount, parse_amount

chain_app = typer.Typer(help="The EVM chain: status and contract deployment.", no_args_is_help=True)
account_app = typer.Typer(help="Accounts: keystores, balances, devnet faucet.", no_args_is_help=True)


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
    account: str | None = typer.Option(None, "--account", help="Deployer account (keystore NAME, devnet:N; "
                                       "default: ZGOS_PRIVATE_KEY, else the devnet deployer)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print each contract's gas and the total cost at the "
                                 "current gas price (deployed on a local fork); deploy nothing."),
    out: Path | None = typer.Option(None, "--out", help="Deployment file to write (default: DATA_DIR/deployment.json); "
                                    "share it with `zg network join --deployment`"),
) -> None:
    """Deploy (or complete) the zgos contract set on the chain at --rpc-url; idempotent."""
    from zgos.devnet.plan import PLAN  # every network's contract module: this command only

    cli = get_ctx(ctx)
    deployer = cli.account(account, role="deployer")
    if dry_run:
        _print_estimate(cli, deployer, PLAN)
        return
    path = out or cli.data_dir.deployment
    deployment = deploy_all(cli.chain(), deployer, path, PLAN)
    console.print(f"deployed {len(deployment.addresses)} contracts on chain {deployment.chain_id} -> {path}")


def _print_estimate(cli: CliContext, deployer: LocalAccount, plan: list[ContractPlan]) -> None:
    """``zg chain deploy --dry-run``'s table (``zgos.chain.dryrun``)."""
    from zgos.chain.dryrun import estimate_deployment

    cli.data_dir.logs.mkdir(parents=True, exist_ok=True)
    estimate = estimate_deployment(cli.rpc_url, deployer, plan, cli.data_dir.logs / "dry-run-fork.log")
    price = estimate.gas_price_wei
    table = Table("contract", "gas", "cost", title=f"deploying on chain {cli.chain().chain_id} "
                  f"at {price / 10**9:g} gwei per gas (nothing sent)")
    for name, gas in estimate.gas.items():
        table.add_row(name, f"{gas:,}", format_amount(gas * price, places=9))
    table.add_row("total", f"{estimate.total_gas:,}", format_amount(estimate.total_cost_wei, places=9))
    console.print(table)
    short = estimate.total_cost_wei - estimate.deployer_balance_wei
    console.print(f"deployer {deployer.address} holds {format_amount(estimate.deployer_balance_wei, places=9)}"
                  + (f": short by {format_amount(short, places=9)}" if short > 0 else ": enough"))


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
