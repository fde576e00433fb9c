"""``zg alignment``: operators' bonds and everyone's scores (issue 17), a thin layer over
``zgos.alignment.contracts``.

``bond KIND AMOUNT`` adds to the caller's bond for a node it runs (``storage``, ``da-signer`` or
``compute``), ``unbond KIND`` starts the unbonding delay, ``withdraw KIND`` takes the bond back
after it, ``register-auditor STAKE`` makes the caller an auditor (who may open storage
challenges, ``zg storage challenge``), and ``scores`` prints one line per subject: operator, kind, score, faults, slashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError

if TYPE_CHECKING:
    from zgos.alignment.contracts import AlignmentContracts
    from zgos.alignment.spec.bonds import BondKind

alignment_app = typer.Typer(help="Alignment: operators' bonds, auditors' findings, scores and slashes.",
                            no_args_is_help=True)
AccountOpt = Annotated[str | None, typer.Option("--account", help="The operator's account (keystore name or devnet:N).")]
KindArg = Annotated[str, typer.Argument(help="storage, da-signer or compute.")]


def _contracts(cli: CliContext) -> AlignmentContracts:
    from zgos.alignment.contracts import AlignmentContracts

    return AlignmentContracts.from_deployment(cli.chain(), cli.deployment())


def _kind(text: str) -> BondKind:
    from zgos.alignment.spec.bonds import InvalidBondKind, get_bond_kind

    try:
        return get_bond_kind(text)
    except InvalidBondKind as exc:
        raise ConfigError(str(exc)) from None


def _amount(text: str) -> int:
    from zgos.core.units import parse_amount

    try:
        amount = parse_amount(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if amount == 0:
        raise ConfigError("the amount must be more than zero")
    return amount


@alignment_app.command("bond")
def bond_command(ctx: typer.Context, kind: KindArg,
                 amount: Annotated[str, typer.Argument(help="How much to add, e.g. '1', '1.5 0G'.")],
                 account: AccountOpt = None) -> None:
    """Add AMOUNT to your bond for the KIND of node you run (announced or registered first)."""
    from zgos.core.units import format_amount

    cli = get_ctx(ctx)
    bond_kind, value = _kind(kind), _amount(amount)
    contracts, operator = _contracts(cli), cli.account(account, role=None)
    contracts.bond(operator, bond_kind, value)
    total = contracts.bond_of(operator.address, bond_kind).amount
    console.print(f"{operator.address} {bond_kind.name.lower()} bond: {format_amount(total)}")


@alignment_app.command("unbond")
def unbond_command(ctx: typer.Context, kind: KindArg, account: AccountOpt = None) -> None:
    """Start unbonding: the bond stays slashable until `zg alignment withdraw` after the delay."""
    cli = get_ctx(ctx)
    bond_kind = _kind(kind)
    contracts, operator = _contracts(cli), cli.account(account, role=None)
    contracts.request_unbond(operator, bond_kind)
    unlock = contracts.bond_of(operator.address, bond_kind).unlock_block
    console.print(f"unbonding; withdraw from block {unlock} once no challenge is open")


@alignment_app.command("withdraw")
def withdraw_command(ctx: typer.Context, kind: KindArg, account: AccountOpt = None) -> None:
    """Take back what is left of an unbonded bond."""
    from zgos.core.units import format_amount

    cli = get_ctx(ctx)
    bond_kind = _kind(kind)
    contracts, operator = _contracts(cli), cli.account(account, role=None)
    amount = contracts.bond_of(operator.address, bond_kind).amount
    contracts.withdraw_bond(operator, bond_kind)
    console.print(f"withdrew {format_amount(amount)}")


@alignment_app.command("register-auditor")
def register_auditor_command(ctx: typer.Context,
                             stake: Annotated[str, typer.Argument(help="The stake, at least the registry's minimum.")],
                             account: AccountOpt = None) -> None:
    """Register your account as an auditor with STAKE: it may then open challenges and report."""
    cli = get_ctx(ctx)
    contracts, auditor = _contracts(cli), cli.account(account, role=None)
    contracts.register_auditor(auditor, _amount(stake))
    console.print(f"{auditor.address} is an auditor")


@alignment_app.command("scores")
def scores_command(ctx: typer.Context,
                   kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None) -> None:
    """One line per subject: operator, kind, score, faults, slashes, amount slashed, bond."""
    from zgos.core.units import format_amount

    cli = get_ctx(ctx)
    only = _kind(kind) if kind is not None else None
    contracts = _contracts(cli)
    records = [r for r in contracts.records() if only is None or r.kind == only]
    if not records:
        console.print("no subject is bonded or reported on yet")
        return
    for r in records:
        bond = contracts.bond_of(r.operator, r.kind).amount
        console.print(f"{r.operator}  {r.kind.name.lower():<9}  score {r.score:>5}  faults {r.faults}  "
                      f"slashes {r.slashes}  slashed {format_amount(r.slashed)}  bond {format_amount(bond)}")
