"""``zg compute provider`` and ``zg compute model``: register and run an inference provider
(``provider register | update | status | settle | serve``) and its model server
(``model serve``). ``status`` and ``settle`` call the running broker's admin API with this data
dir's install token.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import typer
from rich.table import Table

from zgos.cli.context import CliContext, console, get_ctx
from zgos.cli.options import DEFAULT_HOST, HostOpt, PublicUrlOpt
from zgos.compute import model as model_mod
from zgos.compute.cli.common import ACCOUNT, _contracts, _install_token
from zgos.compute.spec.billing import Prices
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount
from zgos.runtime.access import read_token
from zgos.runtime.listen import compute_public_url, format_host
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import FINETUNE_PORT, MODEL_PORT, PROVIDER_ADMIN_PORT, PROVIDER_PORT

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from pydantic import BaseModel

    from zgos.compute.provider.broker import BrokerConfig
    from zgos.compute.provider.executor import SealedExecutor

M = TypeVar("M", bound="BaseModel")

provider_app = typer.Typer(help="Run and manage an inference provider.", no_args_is_help=True)
model_app = typer.Typer(help="The model server (llama.cpp, Gemma 3 270M).", no_args_is_help=True)

DEFAULT_ADMIN_URL = f"http://127.0.0.1:{PROVIDER_ADMIN_PORT}"


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
    model_hash: str | None = typer.Option(None, "--model-hash", help="Model id (default: the file's storage root)"),
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


def _admin(cli: CliContext, url: str | None, method: str, path: str, answer: type[M]) -> M:
    """Call the broker's admin API with the install token (the broker must share the data dir)."""
    url = url or cli.data_dir.devnet_service_url("provider-0", DEFAULT_ADMIN_URL, "--admin-url", admin=True)
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
        data = response.json()
    except ValueError:
        raise ConfigError(f"the broker's admin API answered HTTP {response.status_code} without JSON") from None
    if response.status_code != 200:
        raise ConfigError(f"broker admin API: {data}")
    try:
        return answer.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigError(f"the broker's admin API answered {path} in an unknown shape: {exc}") from None


@provider_app.command("status")
def provider_status(ctx: typer.Context, admin_url: str | None = ADMIN_URL,
                    account: str | None = ACCOUNT) -> None:
    """Requests served, unsettled and settled fees, balance (from the running broker)."""
    from zgos.compute.provider.wire import BrokerStatus

    status = _admin(get_ctx(ctx), admin_url, "GET", "/v1/status", BrokerStatus)
    table = Table("field", "value")
    for key in ("provider", "signer", "model", "requests", "users"):
        table.add_row(key, str(getattr(status, key)))
    for key in ("served", "receipted", "settled", "unsettled", "balance"):
        table.add_row(key, format_amount(getattr(status, key), places=12))
    console.print(table)


@provider_app.command("settle")
def provider_settle(ctx: typer.Context, admin_url: str | None = ADMIN_URL) -> None:
    """Settle every receipted fee now."""
    from zgos.compute.provider.wire import SettlementRound

    done = _admin(get_ctx(ctx), admin_url, "POST", "/v1/settle", SettlementRound)
    console.print(f"settled {done.users} users, {format_amount(done.paid, places=12)}"
                  + (f" (tx {done.tx}, gas {done.gas})" if done.tx else ""))


@provider_app.command("serve")
def provider_serve(
    ctx: typer.Context,
    upstream: str = typer.Option(f"http://127.0.0.1:{MODEL_PORT}", "--upstream", help="OpenAI-compatible model server"),
    host: HostOpt = DEFAULT_HOST,
    port: int | None = typer.Option(None, "--port", show_default=f"{PROVIDER_PORT}; {FINETUNE_PORT} with --finetune"),
    public_url: PublicUrlOpt = None,
    admin_host: str = typer.Option(DEFAULT_HOST, "--admin-host", help="Address the admin API binds (calls need the "
                                   "install token; another host's operator dials it with --admin-url)"),
    admin_port: int = typer.Option(PROVIDER_ADMIN_PORT, "--admin-port", help="Admin API port"),
    model_id: str = typer.Option(model_mod.DEFAULT_MODEL_ID, "--model"),
    model_path: Path | None = typer.Option(None, "--model-path", help="GGUF (tokenizer and hash)"),
    model_hash: str | None = typer.Option(None, "--model-hash", help="Registered model id (default: the file's storage root)"),
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
    cli = get_ctx(ctx)
    if finetune:
        from zgos.compute.finetune.cli import serve_provider

        serve_provider(cli, account=account, host=host, port=FINETUNE_PORT if port is None else port,
                       public_url=public_url)
        return
    configure_service_logging()
    port = PROVIDER_PORT if port is None else port
    provider = cli.account(account, role="provider")
    signer = cli.account(signer_account, role="provider") if signer_account else provider
    config = _broker_config(cli, provider.address, upstream=upstream, model_id=model_id, model_path=model_path,
                            model_hash=model_hash, chat_format=chat_format, credit=credit,
                            settle_interval_s=settle_interval, upstream_timeout_s=timeout, dishonest=dishonest)
    if public_url is not None:
        _announce_url(cli, provider, compute_public_url(host, port, public_url))
    _run_broker(cli, config, provider, signer, (host, port), (admin_host, admin_port))


def _run_broker(cli: CliContext, config: BrokerConfig, provider: LocalAccount, signer: LocalAccount,
                public: tuple[str, int], admin: tuple[str, int]) -> None:
    """Build the broker and serve its public and admin listeners until signalled."""
    from zgos.compute.provider import app as broker_app

    broker = broker_app.build_broker(config, _contracts(cli), provider, signer, _sealed_executor(cli, provider, config))
    console.print(f"provider {provider.address} serving {config.model_id} on http://{format_host(public[0])}:{public[1]} "
                  f"(admin {format_host(admin[0])}:{admin[1]})")
    asyncio.run(broker_app.serve(broker, host=public[0], port=public[1], admin_host=admin[0], admin_port=admin[1],
                                 token=_install_token(cli)))


def _announce_url(cli: CliContext, provider: LocalAccount, url: str) -> None:
    """Make ``url`` the registered service URL (users reach the broker only through it); the
    service must be registered first (``zg compute provider register``)."""
    from zgos.core.errors import ZgError

    contracts = _contracts(cli)
    try:
        current = contracts.service(provider.address)
    except ZgError:
        raise ConfigError(f"{provider.address} has no registered service to announce {url} for",
                          "register it first: `zg compute provider register --url URL ...`") from None
    if current.url == url:
        return
    receipt = contracts.register(provider, url=url, model=current.model, model_hash=current.model_hash,
                                 prices=Prices(current.input_price, current.output_price), signer=current.signer,
                                 verifiability=current.verifiability)
    console.print(f"announced {url} for {provider.address} (tx {receipt.tx_hash})")


def _sealed_executor(cli: CliContext, provider: LocalAccount, config: BrokerConfig) -> SealedExecutor | None:
    """The broker's sealed executor of agent NFTs, if the deployment has ``AgentNFT``; its
    storage nodes are looked up on first use (they may start after the provider). Agents'
    adapters run on the broker's model file, as its model server runs it."""
    from zgos.chain.registry import NodeRegistry
    from zgos.compute.provider.adapters import AdapterServerConfig, AdapterServers
    from zgos.compute.provider.executor import SealedExecutor
    from zgos.inft.client import InftClient
    from zgos.inft.contracts import InftContracts
    from zgos.runtime.outbound import OutboundClient
    from zgos.storage.cli.common import storage_nodes
    from zgos.storage.client import StorageClient

    deployment = cli.deployment()
    if "AgentNFT" not in deployment.addresses:
        return None
    work = cli.data_dir.root / f"executor-{provider.address.lower()}"
    work.mkdir(parents=True, exist_ok=True)

    def client() -> InftClient:
        chain, policy = cli.chain(), cli.outbound_policy()
        storage = StorageClient(list(storage_nodes(cli, None)), chain, deployment.address("Flow"), provider, policy=policy)
        return InftClient(InftContracts.from_deployment(chain, deployment), NodeRegistry(chain, deployment.address("NodeRegistry")),
                          storage, provider, OutboundClient(policy), work, deployment.deploy_block)

    adapters = AdapterServers(AdapterServerConfig(config.model_path, config.model_id, config.chat_format), work / "adapters")
    return SealedExecutor(client, provider, work, adapters)


def _broker_config(cli: CliContext, provider: str, *, upstream: str, model_id: str, model_path: Path | None,
                   model_hash: str | None, chat_format: str, credit: int | None, settle_interval_s: float,
                   upstream_timeout_s: float, dishonest: str | None) -> BrokerConfig:
    """The broker's config from its flags: the model file (default: the packaged Gemma) gives
    the tokenizer and, unless ``--model-hash`` says otherwise, the registered hash."""
    from zgos.chain.dishonest import check_dishonest_mode
    from zgos.compute.provider.broker import DISHONEST_MODES, BrokerConfig

    path = model_path or model_mod.ensure_gemma()
    return BrokerConfig(
        upstream_url=upstream, model_id=model_id, model_path=path, chat_format=chat_format,
        db_path=cli.data_dir.service("compute-provider") / f"{provider.lower()}.sqlite",
        model_hash=_model_hash(cli, path, model_hash), credit=credit, settle_interval_s=settle_interval_s,
        upstream_timeout_s=upstream_timeout_s,
        dishonest=check_dishonest_mode(dishonest, DISHONEST_MODES, cli.chain().chain_id),
    )


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
