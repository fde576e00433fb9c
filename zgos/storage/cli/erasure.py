"""``zg storage`` erasure-coding commands: ``upload --ec K+M`` (via ``upload_ec``), the
rebuilding download (via ``download_ec``), ``health ROOT`` and ``repair ROOT``. A thin layer
over ``zgos.storage.ecclient``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.signals import stop_on_signal
from zgos.storage.cli.common import node_policy, parse_root, resolve_nodes
from zgos.storage.ecclient import ErasureClient, HealthReport, describe
from zgos.storage.spec.erasure import ErasureParams, InvalidErasureParams


def parse_ec(text: str) -> ErasureParams:
    try:
        return ErasureParams.parse(text)
    except InvalidErasureParams as exc:
        raise ConfigError(f"--ec: {exc.message}") from None


def ec_nodes(cli: CliContext, flags: list[str] | None, indexer: str | None) -> list[str]:
    """Every storage node to consider: ``--node`` flags, else all the indexer's usable nodes,
    else the NodeRegistry's (erasure coding needs the nodes of every shard)."""
    if flags:
        return flags
    if indexer:
        from zgos.storage.indexer.client import IndexerClient

        with IndexerClient(indexer) as index:
            return [n["url"] for n in index.sharded_nodes()]
    return resolve_nodes(cli, None)


def ec_client(cli: CliContext, nodes: list[str], policy: AddressPolicy, workers: int = 4,
              account: str | None = None, signs: bool = False) -> ErasureClient:
    """An ``ErasureClient`` on the deployment; with the paying account only when it ``signs``."""
    deployment = cli.deployment()
    signer = cli.account(account, role="user") if signs else None
    return ErasureClient(nodes, cli.chain(), deployment.address("Flow"), deployment.address("ErasureRegistry"),
                         signer, workers=workers, policy=policy)


def upload_ec(cli: CliContext, path: Path, params: ErasureParams, nodes: list[str], policy: AddressPolicy,
              account: str | None, workers: int, fee: int | None) -> None:
    with ec_client(cli, nodes, policy, workers, account, signs=True) as client:
        result = client.upload(path, params, fee=fee)
    console.print(f"root        0x{result.root.hex()}")
    console.print(f"txSeq       {result.tx_seq}")
    console.print(f"parityRoot  0x{result.parity_root.hex()} (txSeq {result.parity_seq})")
    console.print(f"ec          {result.params}: {result.stripes} stripes, {result.data_segments} data + "
                  f"{result.parity_segments} parity segments")
    console.print(f"sent        {result.segments_sent} segments")


def download_ec(cli: CliContext, root: bytes, out: Path, nodes: list[str], policy: AddressPolicy,
                workers: int) -> int | None:
    """Download ROOT if it has an erasure record (rebuilding lost segments); None otherwise."""
    with ec_client(cli, nodes, policy, workers) as client:
        if client.registry is None or client.registry.record_of(root) is None:
            return None
        return client.download(root, out)


def _print_health(report: HealthReport, as_json: bool) -> None:
    data = describe(report)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(f"root {data['root']}  ec {data['ec']}  parity {data['parityRoot']}")
    console.print(f"groups (shards) {', '.join(data['groups'])}; dead nodes: {', '.join(report.dead_nodes) or 'none'}")
    for stripe in data["stripes"]:
        where = "  ".join(
            f"{p['kind']}{'' if p['index'] is None else p['index']}@{','.join(n.rsplit(':', 1)[-1] for n in p['nodes']) or ('-' if p['kind'] != 'zero' else 'any')}"
            for p in stripe["pieces"])
        state = "ok" if stripe["present"] == stripe["of"] else ("degraded" if stripe["readable"] else "LOST")
        console.print(f"stripe {stripe['stripe']:>4}: {stripe['present']}/{stripe['of']} {state:<8} {where}")
    survives = data["survivesMoreLosses"]
    console.print(f"survives {survives} more node loss(es)" if survives >= 0 else "file is NOT readable")
    if data["toRestore"]:
        console.print(f"repairable: {sum(data['toRestore'].values())} piece(s) on {len(data['toRestore'])} live node(s) "
                      "(`zg storage repair ROOT`)")
    if data["noLiveNode"]:
        console.print(f"no live node for {len(data['noLiveNode'])} piece(s): start nodes with those shards")


def health_command(
    ctx: typer.Context,
    root: str = typer.Argument(..., help="Data root (0x...) of a file uploaded with --ec."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL listing the nodes."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Show, per stripe, how many pieces of an erasure-coded file exist and on which nodes."""
    cli = get_ctx(ctx)
    with ec_client(cli, ec_nodes(cli, node, indexer), node_policy(cli, node)) as client:
        _print_health(client.health(parse_root(root)), as_json)


def repair_command(
    ctx: typer.Context,
    root: str | None = typer.Argument(None, help="Data root (0x...) of a file uploaded with --ec."),
    every_file: bool = typer.Option(False, "--all", help="Check and repair every erasure-coded file once."),
    watch: float | None = typer.Option(None, "--watch", min=1.0, help="Keep repairing every file, a pass every SECONDS."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL listing the nodes."),
    workers: int = typer.Option(4, "--workers", min=1, max=64),
    name: str = typer.Option("repairer", "--name", help="Service name; --all/--watch keep their state in DATA_DIR/NAME."),
) -> None:
    """Rebuild the missing pieces of an erasure-coded file (or of all: --all, --watch) onto the
    live nodes of their shards."""
    cli = get_ctx(ctx)
    if (root is None) == (not every_file and watch is None):
        raise ConfigError("give either ROOT or --all / --watch SECONDS")
    if root is None:
        _repair_all(cli, node, indexer, workers, name, watch)
        return
    data_root = parse_root(root)
    with ec_client(cli, ec_nodes(cli, node, indexer), node_policy(cli, node), workers) as client:
        _, restored = client.repair(data_root)
        after = client.health(data_root)
    console.print(f"restored {restored} piece(s); the file now survives {after.survives} more node loss(es)")
    if after.orphaned:
        console.print(f"{len(after.orphaned)} piece(s) have no live node of their shard: start nodes with those shards")


def _repair_all(cli: CliContext, node: list[str] | None, indexer: str | None, workers: int, name: str,
                watch: float | None) -> None:
    import threading

    from zgos.storage.contracts import ErasureRegistry
    from zgos.storage.repairer import STATE_FILE_NAME, RepairPass, RepairWorker

    deployment, chain = cli.deployment(), cli.chain()
    worker = RepairWorker(
        chain, ErasureRegistry(chain, deployment.address("ErasureRegistry")),
        nodes=lambda: ec_nodes(cli, node, indexer),
        client_for=lambda urls: ec_client(cli, urls, node_policy(cli, node), workers),
        state_path=cli.data_dir.service(name) / STATE_FILE_NAME, first_block=deployment.deploy_block,
    )

    def report(result: RepairPass) -> None:
        for status in result.files:
            outcome = status.error or f"restored {status.restored}, survives {status.survives}" + (
                f", {status.orphaned} orphaned" if status.orphaned else "")
            if watch is None or status.restored or status.error:
                console.print(f"0x{status.root.hex()}  {outcome}")
        if watch is None:
            console.print(f"{len(result.files)} erasure-coded file(s) checked on {result.nodes} node(s) "
                          f"at block {result.block}; {result.restored} segment(s) restored")

    if watch is None:
        report(worker.run_once())
        return
    configure_service_logging()
    stop = threading.Event()
    console.print(f"repairing every erasure-coded file, a pass every {watch:g} s", highlight=False)
    with stop_on_signal(stop.set):
        worker.run(watch, stop, on_pass=report)
