"""Explorer web app: JSON API under ``/api`` and one static page that renders it.

The page polls the API; every panel degrades on its own (a stopped chain shows as
unreachable, not as an error page). Networks add their panels as routers here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from zgos.chain.deploy import load_deployment
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ZgError
from zgos.explorer.deps import ExplorerDeps
from zgos.explorer.networks import networks_router
from zgos.explorer.provenance import provenance_router

STATIC_DIR = Path(__file__).parent / "static"
MAX_BLOCKS = 50


def chain_router(deps: ExplorerDeps) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/status")
    def status() -> dict[str, Any]:
        chain = deps.chain()
        try:
            latest = chain.w3.eth.get_block("latest")
        except Exception as exc:
            raise HTTPException(503, detail=f"chain RPC unreachable: {type(exc).__name__}") from None
        try:
            deployment = load_deployment(deps.data_dir.deployment, chain.chain_id)
            contracts: dict[str, str] = deployment.addresses
        except ZgError:
            contracts = {}
        return {
            "rpcUrl": chain.rpc_url,
            "chainId": chain.chain_id,
            "block": int(latest["number"]),
            "timestamp": int(latest["timestamp"]),
            "baseFeePerGas": int(latest.get("baseFeePerGas", 0)),
            "contracts": contracts,
        }

    @router.get("/blocks")
    def blocks(limit: int = 10) -> list[dict[str, Any]]:
        if not 1 <= limit <= MAX_BLOCKS:
            raise HTTPException(400, detail=f"limit must be between 1 and {MAX_BLOCKS}")
        chain = deps.chain()
        head = chain.block_number()
        result = []
        for number in range(head, max(-1, head - limit), -1):
            block = chain.w3.eth.get_block(number)
            result.append({
                "number": number,
                "hash": block["hash"].to_0x_hex(),
                "timestamp": int(block["timestamp"]),
                "transactions": len(block["transactions"]),
                "gasUsed": int(block["gasUsed"]),
            })
        return result

    @router.get("/nodes")
    def nodes() -> dict[str, list[dict[str, Any]]]:
        chain = deps.chain()
        try:
            deployment = load_deployment(deps.data_dir.deployment, chain.chain_id)
        except ZgError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        registry = NodeRegistry(chain, deployment.address("NodeRegistry"))
        return {
            kind.name.lower().replace("_", "-"): [
                {"operator": n.operator, "url": n.url, "shardId": n.shard_id, "numShard": n.num_shard,
                 "updatedAt": n.updated_at}
                for n in registry.nodes(kind)
            ]
            for kind in NodeKind
        }

    @router.get("/services")
    def services() -> list[dict[str, Any]]:
        return deps.services()

    return router


def create_app(deps: ExplorerDeps) -> FastAPI:
    app = FastAPI(title="zgos explorer", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.include_router(chain_router(deps))
    app.include_router(networks_router(deps))
    app.include_router(provenance_router(deps))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
