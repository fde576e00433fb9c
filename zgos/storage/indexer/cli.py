"""``zg storage indexer``: run the indexer + REST gateway (registered on ``zg storage``)."""

from __future__ import annotations

import logging
import threading

import typer

from zgos.chain.registry import NodeRegistry
from zgos.clictx import get_ctx
from zgos.core.errors import ConfigError
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
    from zgos.storage.discovery import PROBE_DEADLINE_S, PROBE_GRACE_S
    from zgos.storage.indexer.directory import NodeDirectory
    from zgos.storage.indexer.server import IndexerServer
    from zgos.storage.indexer.service import Indexer

    cli = get_ctx(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    deployment = cli.deployment()
    chain = cli.chain()
    source = NodeRegistry(chain, deployment.address("NodeRegistry")) if registry else None
    if source is None and not peers:
        raise ConfigError("no node source: --no-registry needs at least one --peers URL")
    policy = cli.outbound_policy()
    directory = NodeDirectory(deployment.chain_id, deployment.address("Flow"), source, tuple(peers or ()), policy=policy)
    indexer = Indexer(directory, policy=policy, chain=chain, erasure_address=deployment.address("ErasureRegistry"),
                      flow_address=deployment.address("Flow"))
    # A slow entry never holds the snapshot back longer than this: its probe carries over.
    wait_s = min(refresh, PROBE_DEADLINE_S + PROBE_GRACE_S)
    try:
        server = IndexerServer(host, port, indexer, cli.data_dir.service(name) / "scratch")
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port") from None
    stop = threading.Event()

    def loop() -> None:  # the first probe runs at once, while the server already answers
        while True:
            try:
                directory.refresh(wait_s)
            except Exception as exc:  # e.g. the chain is down: keep the last snapshot, retry
                logging.getLogger("zgos.storage.indexer").warning("node refresh failed: %s", exc)
            if stop.wait(refresh):
                return

    threading.Thread(target=loop, daemon=True).start()
    print(f"storage indexer on http://{host}:{port}", flush=True)
    try:
        server.serve()  # until SIGINT/SIGTERM
    finally:
        stop.set()
        indexer.close()
        directory.close()
