"""``zg inft authorize`` and ``zg inft run``: the INFT commands that involve a compute provider
acting as the agent's sealed executor. They belong to the compute network, which uses INFT's
client (``zgos/compute/provider/executor.py`` does too), and join ``zg inft``'s other commands
(``zgos.inft.cli``) when this module is loaded as that group (``zgos.cli.main``): the one import
direction between the two networks stays compute -> inft.
"""

from __future__ import annotations

from typing import Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.inft.cli import AccountOpt, NodeOpt, address_of, inft_app, inft_client, owner_call


def authorize_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                      user: Annotated[str, typer.Argument(help="Address or account.")],
                      executor: Annotated[str | None, typer.Option(
                          "--executor", help="Provider URL that runs the agent (default: the devnet's provider-0).")] = None,
                      account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Let USER run the agent (`zg inft run`) on a provider acting as sealed executor: the
    agent's keys are sealed to that provider, and USER never sees the data or the keys."""
    cli = get_ctx(ctx)
    url = executor or cli.data_dir.service_url("provider-0")
    if url is None:
        owner_call(ctx, account, lambda contracts, me, cli: contracts.authorize(me, token_id, address_of(cli, user)),
                    f"authorized {user} on token {token_id} (no executor granted: pass --executor URL)")
        return
    address, pubkey = _executor_key(cli, url)
    with inft_client(cli, account, node) as client:
        with console.status(f"sealing the agent's keys to the executor {address}"):
            client.grant_executor(token_id, pubkey)
        client.contracts.authorize(client.account, token_id, address_of(cli, user))
    console.print(f"authorized {user} on token {token_id} (executor {url})", highlight=False, markup=False)


def _executor_key(cli: CliContext, url: str) -> tuple[str, bytes]:
    """The executor's address and public key from its ``/v1/agents/executor``; the key must
    hash to the address, and that address must have registered ``url`` as its service."""
    from zgos.compute.contracts import ComputeContracts
    from zgos.inft.oracles import parse_pubkey
    from zgos.inft.spec.proofs import compute_pubkey_address
    from zgos.runtime.outbound import OutboundClient

    with OutboundClient(cli.outbound_policy(), deadline_s=10) as http:
        try:
            info = http.get(url.rstrip("/") + "/v1/agents/executor").json()
            address, pubkey = str(info["address"]), parse_pubkey(info["pubkey"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{url} does not answer as a sealed executor: {exc}") from None
    if compute_pubkey_address(pubkey) != address.lower():
        raise ConfigError(f"{url} answers with a key that is not {address}'s")
    registered = ComputeContracts.from_deployment(cli.chain(), cli.deployment()).service(address).url
    if registered.rstrip("/") != url.rstrip("/"):
        raise ConfigError(f"{address} registered {registered}, not {url}")
    return address, pubkey


def run_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                prompt: Annotated[str, typer.Argument(help="What to ask the agent.")],
                provider: Annotated[str | None, typer.Option("--provider", help="Provider address (default: the first).")] = None,
                max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 64,
                account: AccountOpt = None) -> None:
    """Run an agent you are authorized to use, on a provider acting as its sealed executor:
    a paid, signed, verified answer; the agent's data and keys never reach you."""
    from zgos.compute.cli import run_chat

    run_chat(get_ctx(ctx), provider, prompt, max_tokens, None, account, agent=token_id)


inft_app.command("authorize")(authorize_command)
inft_app.command("run")(run_command)
