"""The explorer's lineage endpoint: ``GET /api/provenance/{id}`` → the verified lineage tree.

The walk's modules load with the first request, so the explorer starts as fast as before."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from zgos.chain.deploy import load_deployment
from zgos.core.errors import ZgError
from zgos.explorer.deps import ExplorerDeps


def provenance_router(deps: ExplorerDeps) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/provenance/{target}")
    def provenance(target: str) -> dict[str, Any]:
        from zgos.provenance.graph import (  # loads the compute stack
            Provenance,
            ProvenanceError,
            parse_id,
        )

        try:
            parse_id(target)
        except ProvenanceError as exc:
            raise HTTPException(400, detail=exc.message) from None
        chain = deps.chain()
        try:
            deployment = load_deployment(deps.data_dir.deployment, chain.chain_id)
        except ZgError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        try:
            node = Provenance(chain, deployment, [deps.data_dir.service("compute-user")]).show(target)
        except ProvenanceError as exc:
            raise HTTPException(404, detail=exc.message) from None
        return node.to_json()

    return router
