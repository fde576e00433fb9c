"""What every ``zg`` command needs, resolved once from the global options: data dir, chain,
deployment, contracts and the signing account. Network CLIs receive it as ``ctx.obj``."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

import typer
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from zgos.chain.accounts import resolve_account
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, load_deployment
from zgos.chain.networks import is_devnet
from zgos.core.errors import ConfigError
from zgos.datadir import DataDir
from zgos.runtime.outbound import AddressPolicy

OUTBOUND_ALLOW_ENV = "ZGOS_OUTBOUND_ALLOW"


@dataclass
class CliContext:
    data_dir: DataDir
    rpc_url_flag: str | None = None
    debug: bool = False
    _chain: Chain | None = field(default=None, repr=False)
    _deployment: Deployment | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return self.data_dir.rpc_url(self.rpc_url_flag)

    def chain(self) -> Chain:
        if self._chain is None:
            self._chain = Chain(self.rpc_url)
        return self._chain

    def deployment(self) -> Deployment:
        if self._deployment is None:
            self._deployment = load_deployment(self.data_dir.deployment, self.chain().chain_id)
        return self._deployment

    def contract(self, name: str) -> Contract:
        return self.chain().contract(name, self.deployment().address(name))

    def outbound_policy(self) -> AddressPolicy:
        """Which non-global addresses announced URLs may point at: ``ZGOS_OUTBOUND_ALLOW`` (e.g.
        ``loopback,private``), else the data dir's ``outbound_allow`` (``zg devnet up`` writes
        ``loopback``), else none: on a public network a registry entry naming 127.0.0.1 or
        10.0.0.1 is refused instead of probed."""
        source, text = OUTBOUND_ALLOW_ENV, os.environ.get(OUTBOUND_ALLOW_ENV)
        if text is None:
            source, text = str(self.data_dir.network), str((self.data_dir.read_network() or {}).get("outbound_allow", ""))
        try:
            return AddressPolicy.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def account(self, spec: str | None, role: str | None = "user") -> LocalAccount:
        """The signer for a command: ``--account`` if given, else env, else the devnet role."""
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
