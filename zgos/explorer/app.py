"""Explorer web app: JSON API under ``/api`` and one static page that renders it.

The page polls the API; every panel degrades on its own (a stopped chain shows as
unreachable, not as an error page). Each panel is a router in ``zgos.explorer.panels`` (one
module per network); the app keeps the :class:`ExplorerDeps` they all read.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from zgos.explorer.deps import ExplorerDeps
from zgos.explorer.models import ApiModel
from zgos.explorer.panels import (
    alignment,
    chain,
    compute,
    da,
    home,
    inft,
    provenance,
    search,
    storage,
)

STATIC_DIR = Path(__file__).parent / "static"
PANELS = (chain.router, storage.router, da.router, compute.router, inft.router, alignment.router, provenance.router,
          search.router, home.router)


class Health(ApiModel):
    status: str


def health() -> Health:
    return Health(status="ok")


def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


def create_app(deps: ExplorerDeps) -> FastAPI:
    app = FastAPI(title="zgos explorer", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.deps = deps
    for panel in PANELS:
        app.include_router(panel)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
