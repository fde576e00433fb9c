"""``zg finetune``: the fine-tuning marketplace. A thin layer over ``FineTuningUser``.

User: ``models [PROVIDER] | create --dataset FILE_OR_ROOT [--provider P] [--model M] [--epochs N]
[--yes] | status ID | ack ID | decrypt ID OUT | cancel ID``. Provider: ``provider serve`` (also
reachable as ``zg compute provider serve --finetune``). ``--provider`` and ``--model`` may be
left out when only one is offered, as on the devnet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zgos.cli.context import CliContext, console, get_ctx
from zgos.cli.options import HOST_HELP, PUBLIC_URL_HELP
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry, OnchainStatus
from zgos.compute.finetune.storage import StorageBlobStore, connect_storage
from zgos.compute.finetune.user import FineTuningUser, dataset_bytes
from zgos.compute.spec.tasks import TrainingParams
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.outbound import OutboundClient
from zgos.runtime.ports import FINETUNE_PORT, TUNED_ADMIN_PORT, TUNED_BROKER_PORT, TUNED_MODEL_PORT
from zgos.storage.client import StorageClient

PROGRESS_DEADLINE_S = 5.0  # total, asking a provider how a task goes

app = typer.Typer(help="Fine-tuning: LoRA on a provider, sealed deliverables, lineage on chain.",
                  no_args_is_help=True)
provider_app = typer.Typer(help="Run a fine-tuning provider.", no_args_is_help=True)
app.add_typer(provider_app, name="provider")

ACCOUNT = typer.Option(None, "--account", help="Keystore name, devnet:N, or ZGOS_PRIVATE_KEY")
NODES = typer.Option(None, "--node", help="Storage node URL (default: the nodes announced on chain)")
STATUS_POLL_S = 0.5
FINAL_STATES = ("delivered", "acknowledged", "finished", "failed", "settled", "cancelled")


def storage_client(cli: CliContext, nodes: list[str] | None, account: Any = None) -> StorageClient:
    """A storage client on ``--node`` URLs or the nodes announced in ``NodeRegistry``."""
    return connect_storage(cli.chain(), cli.deployment(), nodes, account)


def _market(cli: CliContext) -> FineTuningMarket:
    return FineTuningMarket(cli.chain(), cli.deployment().address("FineTuningServing"))


def _registry(cli: CliContext) -> ModelRegistry:
    return ModelRegistry(cli.chain(), cli.deployment().address("ModelRegistry"))


def _user(cli: CliContext, account: str | None, nodes: list[str] | None) -> FineTuningUser:
    signer = cli.account(account, role="user")
    store = StorageBlobStore(storage_client(cli, nodes, signer), cli.data_dir.service("finetune-user") / "scratch")
    return FineTuningUser(_market(cli), _registry(cli), signer, store, cli.data_dir.service("finetune-user"))


def _model_name(registry: ModelRegistry, model_id: bytes) -> str:
    return registry.get_model(model_id).name if registry.is_registered(model_id) else "(unregistered)"


def _root(text: str) -> bytes | None:
    try:
        data = bytes.fromhex(text.lower().removeprefix("0x"))
    except ValueError:
        return None
    return data if len(data) == 32 and text.lower().startswith("0x") else None


# --- user ------------------------------------------------------------------------------------


@app.command()
def models(ctx: typer.Context, provider: str | None = typer.Argument(None)) -> None:
    """Base models offered for fine-tuning, with price per token and quotas."""
    cli = get_ctx(ctx)
    market, registry = _market(cli), _registry(cli)
    providers = [provider] if provider else market.providers()
    table = Table("provider", "model", "model id", "price/token", "max dataset", "max tokens", "url")
    for address in providers:
        service = market.get_service(address)
        for model_id in service.models:
            table.add_row(service.provider, _model_name(registry, model_id), "0x" + model_id.hex(),
                          f"{service.price_per_token} neuron", f"{service.max_dataset_bytes} B",
                          str(service.max_tokens), service.url)
    console.print(table)


@app.command()
def create(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", help="A JSON/JSONL file, or the 0x root of one in storage"),
    provider: str | None = typer.Option(None, "--provider"),
    model: str | None = typer.Option(None, "--model", help="Base model name or 0x id"),
    epochs: int = typer.Option(3, "--epochs", min=1),
    learning_rate: float = typer.Option(5e-4, "--learning-rate"),
    lora_rank: int = typer.Option(8, "--lora-rank"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    account: str | None = ACCOUNT,
    node: list[str] | None = NODES,
) -> None:
    """Order a fine-tune: checks and prices the dataset first, then uploads it and escrows the fee."""
    cli = get_ctx(ctx)
    params = TrainingParams(epochs=epochs, learning_rate=learning_rate, lora_rank=lora_rank)
    from zgos.compute.spec.tasks import validate_training_params

    validate_training_params(params)
    user = _user(cli, account, node)
    service = user.service(provider)
    base = user.model(service, model)
    root = _root(dataset)
    data = user.download_dataset(root) if root is not None else dataset_bytes(Path(dataset))
    quote = user.quote(service, base, data, params)  # a bad dataset stops here: nothing paid
    console.print(f"{quote.examples} examples, {quote.tokens} tokens × {quote.epochs} epochs × "
                  f"{quote.price_per_token} neuron = [bold]{format_amount(quote.fee)}[/] "
                  f"to {service.provider} for {_model_name(user.registry, base)}")
    if not yes and not typer.confirm("create the task and escrow this fee?"):
        raise typer.Exit(1)
    if root is None:
        root = user.upload_dataset(data)
        console.print(f"dataset uploaded: root 0x{root.hex()}")
    task_id = user.create(quote, root, params)
    console.print(f"task {task_id} created; follow it with `zg finetune status {task_id}`")


def _progress_of(url: str, task_id: int, policy: AddressPolicy) -> dict[str, Any] | None:
    """The provider's progress of the task (advisory), or None when it does not answer it. The
    URL is the provider's claim on chain: asked through the outbound guard, answer capped."""
    from zgos.compute.finetune.wire import MAX_PROGRESS_BYTES, TaskProgress

    try:
        with OutboundClient(policy, deadline_s=PROGRESS_DEADLINE_S, max_response_bytes=MAX_PROGRESS_BYTES) as http:
            response = http.get(f"{url.rstrip('/')}/v1/finetune/tasks/{task_id}")
        return TaskProgress.model_validate_json(response.content).model_dump() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):  # ValueError: pydantic's ValidationError, an answer of another shape
        return None


def follow_task(market: FineTuningMarket, task_id: int, url: str, policy: AddressPolicy) -> tuple[str, dict[str, Any]]:
    """Draw task ``task_id``'s live bar (state, steps, loss from the provider at ``url``) until it
    is delivered, failed or over on chain; its last state and the provider's last view."""
    with Progress(TextColumn("task {task.fields[task_id]} [bold]{task.fields[state]}[/]"), BarColumn(),
                  TextColumn("step {task.fields[steps]}  loss {task.fields[loss]}"),
                  TimeElapsedColumn(), console=console) as bar:
        line = bar.add_task("train", total=None, task_id=task_id, state="?", loss="-", steps="-")
        while True:
            onchain = market.get_task(task_id).status
            view = _progress_of(url, task_id, policy) or {}
            state = view.get("state") or onchain.name.lower()
            loss = f"{view['loss']:.4f}" if view.get("loss") is not None else "-"
            step, total = view.get("step") or 0, view.get("total_steps") or 0
            bar.update(line, completed=step, total=total or None, state=state, loss=loss,
                       steps=f"{step}/{total}" if total else "-")
            if state.lower() in FINAL_STATES or onchain in (OnchainStatus.CANCELLED, OnchainStatus.SETTLED):
                break
            time.sleep(STATUS_POLL_S)
    return state, view


@app.command()
def status(
    ctx: typer.Context,
    task_id: int,
    watch: bool = typer.Option(True, "--watch/--once", help="Follow until delivered or failed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A task's on-chain status and the provider's progress (live bar of steps and loss)."""
    cli = get_ctx(ctx)
    market = _market(cli)
    task = market.get_task(task_id)
    if task.status == OnchainStatus.NONE:
        raise ConfigError(f"there is no fine-tuning task {task_id}")
    url = market.get_service(task.provider).url
    if as_json or not watch:
        view = _progress_of(url, task_id, cli.outbound_policy()) or {}
        data = {"task_id": task_id, "onchain": task.status.name.lower(), "fee": task.fee,
                "result_root": "0x" + task.result_root.hex() if any(task.result_root) else None, **{
                    k: view.get(k) for k in ("state", "step", "total_steps", "loss", "error")}}
        console.print_json(json.dumps(data)) if as_json else console.print(data)
        return
    state, view = follow_task(market, task_id, url, cli.outbound_policy())
    if view.get("error"):
        console.print(f"[red]failed: {view['error']}[/]")
        raise typer.Exit(1)
    if state.lower() == "delivered":
        console.print(f"delivered: check and accept it with `zg finetune ack {task_id}`")


@app.command()
def ack(ctx: typer.Context, task_id: int, account: str | None = ACCOUNT, node: list[str] | None = NODES) -> None:
    """Download and verify the deliverable, then acknowledge it on chain (releases the fee)."""
    root = _user(get_ctx(ctx), account, node).acknowledge(task_id)
    console.print(f"deliverable 0x{root.hex()} verified and acknowledged; "
                  f"decrypt it with `zg finetune decrypt {task_id} OUT`")


@app.command()
def decrypt(
    ctx: typer.Context,
    task_id: int,
    out: Path,
    register: bool = typer.Option(True, "--register/--no-register", help="Register the model's lineage"),
    name: str | None = typer.Option(None, "--name"),
    licence: str = typer.Option("", "--licence"),
    account: str | None = ACCOUNT,
    node: list[str] | None = NODES,
) -> None:
    """Open the released key, decrypt the adapter into OUT and register the tuned model."""
    result = _user(get_ctx(ctx), account, node).decrypt(task_id, out, register=register, name=name, licence=licence)
    console.print(f"adapter of task {task_id} in {out}: {', '.join(result.files)}")
    console.print(f"model id 0x{result.model_id.hex()}" + (" (registered)" if result.registered else ""))


@app.command()
def cancel(ctx: typer.Context, task_id: int, account: str | None = ACCOUNT) -> None:
    """Cancel a task the provider has not started; the fee is refunded."""
    cli = get_ctx(ctx)
    signer = cli.account(account, role="user")
    FineTuningUser(_market(cli), _registry(cli), signer, None, cli.data_dir.service("finetune-user")).cancel(task_id)
    console.print(f"task {task_id} cancelled; the fee was refunded")


# --- provider --------------------------------------------------------------------------------


def serve_provider(
    cli: CliContext,
    *,
    account: str | None,
    host: str = "127.0.0.1",
    port: int = FINETUNE_PORT,
    public_url: str | None = None,
    price_per_token: int = 10**9,
    max_dataset_bytes: int = 1 << 20,
    max_tokens: int = 200_000,
    tiny: bool = False,
    serve_tuned: bool = True,
    tuned_ports: tuple[int, int, int] = (TUNED_MODEL_PORT, TUNED_BROKER_PORT, TUNED_ADMIN_PORT),
    tuned_prices: tuple[int, int] = (10**9, 2 * 10**9),
    poll_s: float = 1.0,
    nodes: list[str] | None = None,
) -> None:
    """Run the fine-tuning provider (worker, progress API, tuned model serving) until stopped."""
    from zgos.compute.finetune.app import ProviderConfig, run_provider
    from zgos.compute.finetune.service import zg_argv

    configure_service_logging()
    provider = cli.account(account, role="finetune-provider")
    config = ProviderConfig(
        state_dir=cli.data_dir.service("finetune-provider"),
        zg_argv=tuple(zg_argv(cli.data_dir.root, cli.rpc_url_flag, cli.deployment_flag)),
        account=account, host=host, port=port, public_url=public_url, price_per_token=price_per_token,
        max_dataset_bytes=max_dataset_bytes, max_tokens=max_tokens, tiny=tiny, serve_tuned=serve_tuned,
        tuned_ports=tuned_ports, tuned_prices=tuned_prices, poll_s=poll_s, nodes=tuple(nodes or ()),
    )
    console.print(f"fine-tuning provider {provider.address} on {config.url}")
    run_provider(config, provider, cli)


@provider_app.command("serve")
def provider_serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
    port: int = typer.Option(FINETUNE_PORT, "--port", help="Progress API (the registered service URL)"),
    url: str | None = typer.Option(None, "--public-url", "--url", help=PUBLIC_URL_HELP),
    price: int = typer.Option(10**9, "--price-per-token", min=0, help="neuron per training token"),
    max_dataset_bytes: int = typer.Option(1 << 20, "--max-dataset-bytes", min=1),
    max_tokens: int = typer.Option(200_000, "--max-tokens", min=1),
    serve_tuned: bool = typer.Option(True, "--serve-tuned/--no-serve-tuned",
                                     help="Serve the newest tuned model through an inference broker"),
    tuned_model_port: int = typer.Option(TUNED_MODEL_PORT, "--tuned-model-port"),
    tuned_port: int = typer.Option(TUNED_BROKER_PORT, "--tuned-port", help="The tuned model's broker"),
    tuned_admin_port: int = typer.Option(TUNED_ADMIN_PORT, "--tuned-admin-port"),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Chain poll interval, seconds"),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Offer the tiny test model"),
    node: list[str] | None = NODES,
    account: str | None = ACCOUNT,
) -> None:
    """Run the fine-tuning provider: worker, progress API and tuned-model serving."""
    serve_provider(get_ctx(ctx), account=account, host=host, port=port, public_url=url, price_per_token=price,
                   max_dataset_bytes=max_dataset_bytes, max_tokens=max_tokens, tiny=tiny, serve_tuned=serve_tuned,
                   tuned_ports=(tuned_model_port, tuned_port, tuned_admin_port), poll_s=poll, nodes=node)
