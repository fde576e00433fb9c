"""What every ``zg compute`` command module shares: the ``--account`` option, amounts, the
deployment's compute contracts and the install token of this data dir's local services."""

from __future__ import annotations

import typer

from zgos.cli.context import CliContext
from zgos.compute.contracts import ComputeContracts
from zgos.core.errors import ConfigError
from zgos.core.units import parse_amount
from zgos.runtime.access import load_or_create_token

ACCOUNT = typer.Option(None, "--account", help="Keystore name, devnet:N, or ZGOS_PRIVATE_KEY")


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _install_token(cli: CliContext) -> str:
    """The install token shared by this data dir's local services (created on first use)."""
    cli.data_dir.root.mkdir(parents=True, exist_ok=True)
    return load_or_create_token(cli.data_dir.token)


def _contracts(cli: CliContext) -> ComputeContracts:
    return ComputeContracts.from_deployment(cli.chain(), cli.deployment())
