"""``zg auditor``: run an auditor node, and read what auditors found (issue 17 §4).

``run`` registers the account as an auditor (staking the registry's minimum) and audits every
``--interval`` seconds; ``status`` asks a running auditor's status API; ``reports [SUBJECT]``
reads every auditor's reports from the chain, so it needs no auditor running.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.runtime.ports import AUDITOR_PORT

if TYPE_CHECKING:
    from zgos.alignment.auditor.rounds import Auditor

auditor_app = typer.Typer(help="Auditors: probe providers, spot-check and challenge storage nodes, report.",
                          no_args_is_help=True)
DEFAULT_INTERVAL_S = 30.0


def _model_files(extra: list[Path]) -> dict[bytes, Path]:
    """The auditor's copies of models, by the id providers register (the file's storage root)."""
    from zgos.compute.model import ensure_gemma, model_hash

    for path in extra:
        if not path.is_file():
            raise ConfigError(f"no model file at {path}")
    return {model_hash(path): path for path in [ensure_gemma(), *extra]}


def build_auditor(cli: CliContext, account_spec: str | None, model_paths: list[Path], probe: bool,
                  challenge_every: int, seed: int | None) -> Auditor:
    from zgos.alignment.auditor.compute import ComputeProbe
    from zgos.alignment.auditor.da import DaAudit
    from zgos.alignment.auditor.journal import Journal
    from zgos.alignment.auditor.rounds import Auditor, RoundConfig, registered_subjects
    from zgos.alignment.auditor.storage import StorageAudit
    from zgos.alignment.contracts import AlignmentContracts
    from zgos.chain.registry import NodeRegistry
    from zgos.compute.contracts import ComputeContracts
    from zgos.compute.model import ensure_gemma
    from zgos.compute.tokens import TokenCounter
    from zgos.compute.user.client import ComputeUser
    from zgos.da.contracts import DAContracts
    from zgos.storage.cli.common import storage_nodes
    from zgos.storage.client import StorageClient
    from zgos.storage.contracts import FlowContract

    chain, deployment, policy = cli.chain(), cli.deployment(), cli.outbound_policy()
    account = cli.account(account_spec, role="auditor")
    work = cli.data_dir.service("auditor") / account.address.lower()
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    compute = ComputeContracts.from_deployment(chain, deployment)
    contracts = AlignmentContracts.from_deployment(chain, deployment)
    storage = StorageAudit(chain, FlowContract(chain, deployment.address("Flow")), contracts, policy,
                           deployment.deploy_block, rng)
    compute_probe = None
    if probe:
        user = ComputeUser(compute, account, work / "user", tokens=TokenCounter(ensure_gemma()), policy=policy)
        compute_probe = ComputeProbe(user, _model_files(model_paths).get, work)

    def evidence_store() -> StorageClient:
        return StorageClient(list(storage_nodes(cli, None)), chain, deployment.address("Flow"), account, policy=policy)

    subjects = registered_subjects(compute, NodeRegistry(chain, deployment.address("NodeRegistry")))
    da = DaAudit(DAContracts.from_addresses(chain, deployment.addresses), rng, policy) if "DAEntrance" in deployment.addresses else None
    return Auditor(account, contracts, compute, subjects, storage,
                   compute_probe, evidence_store, Journal(work / "journal.sqlite"),
                   RoundConfig(challenge_every=challenge_every), rng, work, da)


@auditor_app.command("run")
def run_command(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="Seconds between rounds.")] = DEFAULT_INTERVAL_S,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = AUDITOR_PORT,
    model_path: Annotated[list[Path] | None, typer.Option("--model-path", help="More GGUFs to re-execute on.")] = None,
    no_probes: Annotated[bool, typer.Option("--no-probes", help="Audit storage only.")] = False,
    challenge_every: Annotated[int, typer.Option("--challenge-every", min=0, help="Rounds between on-chain challenges.")] = 10,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the auditor's random choices.")] = None,
    account: Annotated[str | None, typer.Option("--account")] = None,
) -> None:
    """Run audit rounds and serve the status API."""
    from zgos.alignment.auditor.service import AuditorProcess
    from zgos.runtime.logs import configure_service_logging

    cli = get_ctx(ctx)
    auditor = build_auditor(cli, account, model_path or [], not no_probes, challenge_every, seed)
    auditor.register(auditor.contracts.min_auditor_stake())
    configure_service_logging()
    console.print(f"auditor {auditor.account.address}: a round every {interval:g} s; status on http://{host}:{port}")
    AuditorProcess(auditor, interval).run(host, port)


@auditor_app.command("status")
def status_command(url: Annotated[str, typer.Option("--url")] = f"http://127.0.0.1:{AUDITOR_PORT}") -> None:
    """A running auditor's rounds, findings, challenges and slashes."""
    try:
        status = httpx.get(url.rstrip("/") + "/v1/status", timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(f"no auditor answers at {url} ({type(exc).__name__})", "start one: zg auditor run") from None
    console.print(f"auditor {status['auditor']}: {status['rounds_finished']} rounds "
                  f"({status['rounds_begun'] - status['rounds_finished']} unfinished)")
    for name, count in sorted(status["counts"].items()):
        console.print(f"  {name.replace('_', ' ')}: {count}")


@auditor_app.command("reports")
def reports_command(ctx: typer.Context,
                    subject: Annotated[str | None, typer.Argument(help="An operator address.")] = None,
                    from_block: Annotated[int | None, typer.Option("--from-block", min=0,
                                                                   help="Default: the deployment's block.")] = None) -> None:
    """Every auditor's reports on chain (of SUBJECT, or everyone's), newest last."""
    from eth_utils.address import is_address

    from zgos.alignment.contracts import AlignmentContracts

    if subject is not None and not is_address(subject):
        raise ConfigError(f"SUBJECT must be an operator address, got {subject!r}")
    cli = get_ctx(ctx)
    contracts = AlignmentContracts.from_deployment(cli.chain(), cli.deployment())
    reports = contracts.reports(subject, cli.deployment().deploy_block if from_block is None else from_block)
    table = Table("block", "subject", "kind", "finding", "delta", "score", "auditor", "evidence")
    for r in reports:
        table.add_row(str(r.block), r.subject, r.kind, r.finding, str(r.delta), str(r.score), r.auditor,
                      escape("0x" + r.evidence_root.hex()))
    console.print(table if reports else "no reports")
