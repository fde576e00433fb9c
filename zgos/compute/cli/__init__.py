"""``zg compute``: paid, verifiable inference. A thin layer over ``zgos.compute``.

User (here): ``deposit | withdraw | ledger | fund [PROVIDER] AMOUNT | refund [PROVIDER] |
providers | chat [PROVIDER] PROMPT | verify RESPONSE_ID | serve | token``. Provider
(``provider.py``): ``provider register | update | status | settle | serve``. Model server:
``model serve``. On the devnet, user commands default to the demo account and PROVIDER may be
left out when one provider serves the model.

Local services (the proxy, the broker's admin API) answer only calls carrying the install token
``<data-dir>/token`` (created 0600 at first use; ``zg compute token`` prints it).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from zgos.chain.standing import Standings
from zgos.cli.context import CliContext, console, err_console, get_ctx
from zgos.compute import model as model_mod
from zgos.compute.cli.common import ACCOUNT, _amount, _contracts, _install_token
from zgos.compute.cli.provider import model_app, provider_app
from zgos.compute.contracts import ServiceInfo
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount
from zgos.runtime.ports import USER_PROXY_PORT

app = typer.Typer(help="Compute: paid, signed, verifiable inference.", no_args_is_help=True)
app.add_typer(provider_app, name="provider")
app.add_typer(model_app, name="model")


def _cap(text: str) -> int | None:
    """An amount, or ``none`` for no cap."""
    return None if text.strip().lower() == "none" else _amount(text)


def _tokens_for(cli: CliContext, services: list[ServiceInfo], tokenizer: Path | None) -> TokenCounter | None:
    """The tokenizer of the model the user talks to: ``--tokenizer`` or, for the packaged
    Gemma (recognised by its on-chain hash), the locally assembled copy."""
    if tokenizer is not None:
        return TokenCounter(tokenizer)
    if any(s.model_hash == model_mod.GEMMA_ROOT for s in services):
        return TokenCounter(model_mod.ensure_gemma())
    return None


def _user(cli: CliContext, account: str | None, services: list[ServiceInfo] | None = None,
          tokenizer: Path | None = None) -> ComputeUser:
    tokens = _tokens_for(cli, services, tokenizer) if services is not None else None
    return ComputeUser(_contracts(cli), cli.account(account, role="user"), cli.data_dir.service("compute-user"),
                       tokens=tokens, policy=cli.outbound_policy())


def _provider(user: ComputeUser, provider: str | None) -> ServiceInfo:
    return user.service(provider) if provider else user.default_provider()


# --- user ------------------------------------------------------------------------------------


@app.command()
def deposit(ctx: typer.Context, amount: str, account: str | None = ACCOUNT) -> None:
    """Deposit AMOUNT (e.g. 5 or '0.5 0G') into your compute ledger."""
    user = _user(get_ctx(ctx), account)
    console.print(f"deposited {format_amount(_amount(amount))} (tx {user.deposit(_amount(amount))})")


@app.command()
def withdraw(ctx: typer.Context, amount: str, account: str | None = ACCOUNT) -> None:
    """Withdraw AMOUNT of your ledger's available balance."""
    user = _user(get_ctx(ctx), account)
    console.print(f"withdrew {format_amount(_amount(amount))} (tx {user.withdraw(_amount(amount))})")


@app.command()
def ledger(ctx: typer.Context, account: str | None = ACCOUNT,
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Your ledger: available balance and every provider sub-account."""
    data = _user(get_ctx(ctx), account).ledger()
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(f"{data['user']} available {format_amount(data['available'])}")
    table = Table("provider", "balance", "pending refund", "unlocks at", "settled", "receipted")
    for provider, sub in data["sub_accounts"].items():
        table.add_row(provider, format_amount(sub["balance"], 12), format_amount(sub["pending_refund"], 12),
                      str(sub["refund_unlock_at"] or "-"), format_amount(sub["settled"], 12),
                      format_amount(sub["receipted"], 12))
    console.print(table)


@app.command()
def fund(ctx: typer.Context, args: list[str] = typer.Argument(..., help="[PROVIDER] AMOUNT"),
         account: str | None = ACCOUNT) -> None:
    """Move AMOUNT into your sub-account with PROVIDER (and acknowledge its signer)."""
    if len(args) not in (1, 2):
        raise ConfigError("usage: zg compute fund [PROVIDER] AMOUNT")
    user = _user(get_ctx(ctx), account)
    service = _provider(user, args[0] if len(args) == 2 else None)
    tx = user.fund(service.provider, _amount(args[-1]))
    console.print(f"funded {service.provider} with {format_amount(_amount(args[-1]))} (tx {tx})")


@app.command()
def refund(ctx: typer.Context, provider: str | None = typer.Argument(None),
           amount: str | None = typer.Option(None, "--amount", help="Default: the whole sub-account"),
           account: str | None = ACCOUNT) -> None:
    """Request a refund from a sub-account; run again after the lock time to collect it."""
    user = _user(get_ctx(ctx), account)
    service = _provider(user, provider)
    result = user.refund(service.provider, _amount(amount) if amount else None)
    if result["processed"]:
        console.print(f"refund collected into your ledger (tx {result['tx']})")
    else:
        console.print(f"refund of {format_amount(result['requested'])} requested; collect it after "
                      f"unix time {result['unlock_at']} with `zg compute refund` again")


@app.command()
def providers(ctx: typer.Context, model: str | None = typer.Option(None, "--model"),
              account: str | None = ACCOUNT) -> None:
    """Registered inference providers with model, prices and signer."""
    cli = get_ctx(ctx)
    table = Table("provider", "model", "input/token", "output/token", "url", "signer", "verifiability")
    for s in _contracts(cli).services():
        if model is None or s.model == model:
            table.add_row(s.provider, s.model, f"{s.input_price} neuron", f"{s.output_price} neuron", s.url,
                          s.signer, s.verifiability or "signed responses, no TEE")
    console.print(table)


@app.command()
def chat(ctx: typer.Context, args: list[str] = typer.Argument(..., help="[PROVIDER] PROMPT"),
         max_tokens: int = typer.Option(64, "--max-tokens", min=1),
         tokenizer: Path | None = typer.Option(None, "--tokenizer", help="GGUF to count tokens with"),
         agent: int | None = typer.Option(None, "--agent", min=0, help="Run this agent NFT (sealed executor)"),
         account: str | None = ACCOUNT) -> None:
    """Ask PROVIDER one question; the answer is verified and receipted."""
    if len(args) not in (1, 2):
        raise ConfigError('usage: zg compute chat [PROVIDER] "prompt"')
    run_chat(get_ctx(ctx), args[0] if len(args) == 2 else None, args[-1], max_tokens, tokenizer, account, agent)


def run_chat(cli: CliContext, provider: str | None, prompt: str, max_tokens: int, tokenizer: Path | None,
             account: str | None, agent: int | None = None) -> None:
    """One paid, verified chat (``zg compute chat``, ``zg inft run``), printed with its usage."""
    contracts = _contracts(cli)
    user = _user(cli, account, contracts.services(), tokenizer)
    service = _provider(user, provider)
    user.acknowledge(service)
    verified = user.chat(service.provider, [{"role": "user", "content": prompt}], max_tokens, agent=agent)
    console.print(verified.text, highlight=False, markup=False)
    response = verified.response
    err_console.print(f"[dim]verified: {response.model_id}, {response.input_tokens}+{response.output_tokens} tokens, "
              f"fee {response.fee} neuron, id {verified.response_id}[/]", highlight=False)


@app.command()
def verify(ctx: typer.Context, response_id: str, account: str | None = ACCOUNT) -> None:
    """Re-check a response you received: the provider's signature against the registry."""
    result = _user(get_ctx(ctx), account).verify_stored(response_id)
    console.print_json(json.dumps(result))
    if not (result["signature_valid"] and result["matches_local_record"]):
        raise typer.Exit(1)


@app.command()
def serve(ctx: typer.Context, port: int = typer.Option(USER_PROXY_PORT, "--port"),
          host: str = typer.Option("127.0.0.1", "--host"),
          provider: list[str] | None = typer.Option(None, "--provider", help="Only these providers"),
          top_up: str = typer.Option("1", "--top-up", help="Auto top-up step per sub-account"),
          max_balance: str = typer.Option("10", "--max-balance", help="Never fund a sub-account above this"),
          max_top_up_per_day: str = typer.Option("10", "--max-top-up-per-day",
                                                 help="Cap on automatic top-ups in any 24 h ('none': no cap)"),
          max_price: int | None = typer.Option(None, "--max-price", min=0,
                                               help="Never use a provider charging more neuron per input or "
                                                    "output token"),
          max_spend_per_hour: str = typer.Option("1", "--max-spend-per-hour",
                                                 help="Cap on receipts signed in any hour ('none': no cap)"),
          max_spend_per_day: str = typer.Option("10", "--max-spend-per-day",
                                                help="Cap on receipts signed in any 24 h ('none': no cap)"),
          allow_origin: list[str] | None = typer.Option(None, "--allow-origin",
                                                        help="A web origin you trust to call the proxy "
                                                             "(e.g. http://localhost:3000); repeatable"),
          timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Total seconds a provider call may take"),
          tokenizer: Path | None = typer.Option(None, "--tokenizer", help="GGUF to count tokens with"),
          account: str | None = ACCOUNT) -> None:
    """A local OpenAI-compatible proxy: point the openai client at http://HOST:PORT/v1 with the
    install token as its API key."""
    from zgos.compute.spec.limits import SpendCaps
    from zgos.compute.user.proxy import Funding, UserProxy, proxy_server
    from zgos.compute.user.router import Router
    from zgos.runtime.logs import configure_service_logging

    cli = get_ctx(ctx)
    configure_service_logging()
    contracts = _contracts(cli)
    user = _user(cli, account, contracts.services(), tokenizer)
    funding = Funding(_amount(top_up), _amount(max_balance), _cap(max_top_up_per_day))
    caps = SpendCaps(_cap(max_spend_per_hour), _cap(max_spend_per_day))
    proxy = UserProxy(user, Router(user, provider, max_price, _standings(cli)), funding, timeout_s=timeout, caps=caps,
                      address_policy=cli.outbound_policy())
    token = _install_token(cli)
    server = proxy_server(proxy, host=host, port=port, token=token, origins=allow_origin or ())
    console.print(f"zgos compute proxy for {user.account.address} on http://{host}:{port}/v1", highlight=False)
    console.print(f"install token (the API key): {token}", highlight=False, markup=False)
    server.run()


@app.command()
def token(ctx: typer.Context) -> None:
    """Print the install token: the API key of `zg compute serve` and of the broker's admin API."""
    print(_install_token(get_ctx(ctx)))


def _standings(cli: CliContext) -> Standings | None:
    """The auditors' records of providers (``AlignmentRegistry``), if the deployment has one."""
    from zgos.chain.registry import NodeKind
    from zgos.chain.standing import registry_standings

    return registry_standings(cli.chain(), cli.deployment(), NodeKind.COMPUTE)
