"""``zg explorer serve``: run the explorer web app."""

from __future__ import annotations

from typing import Any

import typer
import uvicorn

from zgos.cli.context import get_ctx
from zgos.devnet.orchestrator import Devnet
from zgos.explorer.app import create_app
from zgos.explorer.deps import ExplorerDeps
from zgos.runtime.datadir import DataDir
from zgos.runtime.ports import EXPLORER_PORT

app = typer.Typer(help="The explorer: network state in a browser.", no_args_is_help=True)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(EXPLORER_PORT, "--port"),
) -> None:
    """Serve the explorer at http://HOST:PORT."""
    cli = get_ctx(ctx)
    deps = ExplorerDeps(data_dir=cli.data_dir, rpc_url=cli.rpc_url, services=lambda: devnet_service_rows(cli.data_dir))
    uvicorn.run(create_app(deps), host=host, port=port, log_level="warning")


def devnet_service_rows(data_dir: DataDir) -> list[dict[str, Any]]:
    """The devnet's services as the explorer lists them (none when this data dir runs no devnet)."""
    if data_dir.read_network() is None:
        return []
    return [{"name": s.name, "url": s.url, "pid": s.pid, "state": s.state} for s in Devnet(data_dir).status()]
