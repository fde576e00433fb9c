"""``zg storage indexer``: run the indexer + REST gateway (registered on ``zg storage``)."""

from __future__ import annotations

import typer

from zgos.cli.context import get_ctx
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.memory import keep_freed_buffers
from zgos.runtime.ports import INDEXER_PORT

REFRESH_S = 5.0


def indexer_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(INDEXER_PORT, "--port"),
    peers: list[str] | None = typer.Option(None, "--peers", help="Storage node URL to use besides the registry (repeat)."),
    registry: bool = typer.Option(True, "--registry/--no-registry", help="Discover nodes from the NodeRegistry."),
    refresh: float = typer.Option(REFRESH_S, "--refresh", min=0.2, help="Seconds between node probes."),
    name: str = typer.Option("indexer", "--name", help="Service name; scratch space lives in DATA_DIR/NAME."),
) -> None:
    """Run the storage indexer: indexer_* JSON-RPC and the REST gateway (/file, /file/info, /node/status)."""
    from zgos.chain.registry import NodeKind
    from zgos.chain.standing import registry_standings
    from zgos.storage.indexer.app import IndexerConfig, IndexerService

    cli = get_ctx(ctx)
    configure_service_logging()
    keep_freed_buffers()  # the gateway relays a fresh 256 KiB buffer per segment
    deployment = cli.deployment()
    config = IndexerConfig(
        scratch_dir=cli.data_dir.service(name) / "scratch", chain_id=deployment.chain_id,
        flow_address=deployment.address("Flow"), erasure_address=deployment.address("ErasureRegistry"),
        registry_address=deployment.address("NodeRegistry") if registry else None, refresh_s=refresh,
        host=host, port=port, peers=tuple(peers or ()), outbound=cli.outbound_policy(),
    )
    service = IndexerService(config, cli.chain(), registry_standings(cli.chain(), deployment, NodeKind.STORAGE))
    service.run(started=lambda: print(f"storage indexer on http://{host}:{port}", flush=True))
