"""The lineage panel: ``GET /api/provenance/{id}`` -> the verified lineage tree.

The walk's modules load with the first request, so the explorer starts as fast as before."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, JsonValue

from zgos.explorer.deps import Deps

router = APIRouter(prefix="/api")


class LineageCheck(BaseModel):
    """One check of a node: its name, its outcome (None: could not be checked), and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool | None
    detail: str


class LineageNode(BaseModel):
    """A node of the lineage tree (``zgos.provenance.graph.Node``) with its checks and children."""

    model_config = ConfigDict(frozen=True)

    kind: str  # response | model | task | dataset | deliverable | account
    id: str
    label: str
    verified: bool
    facts: dict[str, JsonValue]
    checks: list[LineageCheck]
    children: list[LineageNode]


@router.get("/provenance/{target}")
def provenance(deps: Deps, target: str) -> LineageNode:
    from zgos.provenance.graph import (  # loads the compute stack
        Provenance,
        ProvenanceError,
        parse_id,
    )

    try:
        parse_id(target)
    except ProvenanceError as exc:
        raise HTTPException(400, detail=exc.message) from None
    chain, deployment = deps.chain(), deps.deployment()
    try:
        node = Provenance(chain, deployment, [deps.data_dir.service("compute-user")], policy=deps.data_dir.outbound_policy()).show(target)
    except ProvenanceError as exc:
        raise HTTPException(404, detail=exc.message) from None
    return LineageNode.model_validate(node.to_json())
