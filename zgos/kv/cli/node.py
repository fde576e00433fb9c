"""``zg kv node``: run a KV node (``zgos.kv.node.app``) from the command line: the flags and the
data dir's deployment (Flow address, deploy block) become a ``KvNodeConfig``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.kv.aliases import resolve_stream
from zgos.runtime.ports import KV_PORT

if TYPE_CHECKING:
    from zgos.kv.node.app import KvNodeConfig

def parse_streams(cli: CliContext, text: str) -> frozenset[bytes]:
    """``--streams ID[,ID...]``: stream ids or aliases of the data dir."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError("--streams names no stream", "pass --streams 0x<64 hex digits>[,...] or an alias")
    return frozenset(resolve_stream(cli.data_dir, name) for name in names)


def node_config(cli: CliContext, streams: str, nodes: list[str] | None, name: str, host: str, port: int,
                confirmations: int, data_deadline: float) -> KvNodeConfig:
    from zgos.kv.node.app import KvNodeConfig
    from zgos.kv.node.replayer import ReplayConfig
    from zgos.storage.cli.common import storage_nodes

    deployment = cli.deployment()
    replay = ReplayConfig(monitored=parse_streams(cli, streams), first_block=deployment.deploy_block,
                          confirmations=confirmations, data_deadline_s=data_deadline)
    return KvNodeConfig(state_dir=cli.data_dir.service(name), rpc_url=cli.rpc_url,
                        flow_address=deployment.address("Flow"), storage_nodes=storage_nodes(cli, nodes),
                        replay=replay, host=host, port=port)


def node_command(
    ctx: typer.Context,
    streams: Annotated[str, typer.Option("--streams", help="Streams to replay: ID[,ID...] (ids or aliases).")],
    storage_node: Annotated[list[str] | None, typer.Option(
        "--storage-node", help="Storage node URL to read transactions from (repeat; default: the devnet's, "
        "else the ones announced on chain).")] = None,
    name: Annotated[str, typer.Option("--name", help="Service name; state lives in DATA_DIR/NAME.")] = "kv-0",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = KV_PORT,
    confirmations: Annotated[int, typer.Option("--confirmations", min=0, help="Blocks behind head to replay.")] = 0,
    data_deadline: Annotated[float, typer.Option(
        "--data-deadline", min=0.1, help="Seconds a transaction's data may stay unavailable before it is "
        "skipped as DataUnavailable (the stream goes on).")] = 60.0,
) -> None:
    """Run a KV node: replay the streams' transactions from the log (verified downloads from the
    storage nodes) and serve 0G's kv_* JSON-RPC on HOST:PORT."""
    from zgos.kv.node.app import KvNode
    from zgos.runtime.logs import configure_service_logging

    cli = get_ctx(ctx)
    config = node_config(cli, streams, storage_node, name, host, port, confirmations, data_deadline)
    configure_service_logging()
    node = KvNode(config)
    listed = ", ".join("0x" + s.hex() for s in sorted(config.replay.monitored))
    node.run(started=lambda: console.print(
        f"kv node {name} on {node.server.url} (streams {listed}; storage {', '.join(config.storage_nodes)}; "
        f"data {config.state_dir})", highlight=False, markup=False))
