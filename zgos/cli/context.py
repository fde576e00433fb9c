"""What every ``zg`` command needs, resolved once from the global options: data dir, chain,
deployment, contracts and the signing account. Network CLIs receive it as ``ctx.obj``.

The chain libraries (web3, eth_account) are imported when a command first asks for the chain
or an account, not when ``zg`` starts: ``zg --help`` and ``zg version`` never load them.
"""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.datadir import DataDir

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract

    from zgos.chain.client import Chain
    from zgos.chain.deploy import Deployment

# Piped output is read by programs and people with wide terminals: never truncate addresses.
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 240)


@dataclass
class CliContext:
    """The global options, resolved: ``--rpc-url`` and ``--deployment`` (a file or URL) win over
    the network this data dir joined (``zg network join``) or runs (``zg devnet up``)."""

    data_dir: DataDir
    rpc_url_flag: str | None = None
    debug: bool = False
    deployment_flag: str | None = None
    _chain: Chain | None = field(default=None, repr=False)
    _deployment: Deployment | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return self.data_dir.rpc_url(self.rpc_url_flag)

    def chain(self) -> Chain:
        """The chain, with the confirmations the joined network asks for (``network.json``),
        else its known profile's (``zgos.chain.networks``)."""
        if self._chain is None:
            from zgos.chain.client import Chain

            confirmations = (self.data_dir.read_network() or {}).get("confirmations")
            self._chain = Chain(self.rpc_url, confirmations=int(confirmations) if confirmations is not None else None)
        return self._chain

    def deployment(self) -> Deployment:
        if self._deployment is None:
            from zgos.chain.deploy import load_deployment, read_deployment_source

            chain_id = self.chain().chain_id
            self._deployment = (read_deployment_source(self.deployment_flag, chain_id) if self.deployment_flag
                                else load_deployment(self.data_dir.deployment, chain_id))
        return self._deployment

    def contract(self, name: str) -> Contract:
        return self.chain().contract(name, self.deployment().address(name))

    def outbound_policy(self) -> AddressPolicy:
        """Which non-global addresses announced URLs may name (``DataDir.outbound_policy``)."""
        return self.data_dir.outbound_policy()

    def account(self, spec: str | None, role: str | None = "user") -> LocalAccount:
        """The signer for a command: ``--account`` if given, else env, else the devnet role."""
        from zgos.chain.accounts import resolve_account
        from zgos.chain.networks import is_devnet

        return resolve_account(
            spec,
            keystore=self.data_dir.keystore,
            default_role=role,
            allow_devnet=is_devnet(self.chain().chain_id),
            password=lambda: getpass.getpass(f"password for {spec}: "),
        )


def get_ctx(ctx: typer.Context) -> CliContext:
    obj: Any = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj
