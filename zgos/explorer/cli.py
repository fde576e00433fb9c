"""``zg explorer serve``: run the explorer web app."""

from __future__ import annotations

import typer
import uvicorn

from zgos.clictx import get_ctx
from zgos.explorer.app import ExplorerDeps, create_app
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
    deps = ExplorerDeps(data_dir=cli.data_dir, rpc_url=cli.rpc_url)
    uvicorn.run(create_app(deps), host=host, port=port, log_level="warning")
