"""``GET /api/home``: every answer the home page draws, in one response.

The home page shows eleven panels. Asked one by one, they cost the browser eleven requests
(six at a time per host) and the server eleven rounds of routing and JSON; here the server works
them out at once, each in its own thread, and answers with each panel's JSON under the path the
page would have asked (``HOME_PARTS``). A panel that fails is its own error, as its own request
would have been: ``{"status": 4xx/5xx, "body": {"detail": ...}}``; the others still draw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.encoders import jsonable_encoder

from zgos.core.errors import ZgError
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.panels import chain, compute, da, inft, storage

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api")
HOME_LIST = 5  # files, blobs and tasks on the home page
HOME_BLOCKS = 10

# the path the page asks -> the panel's answer to it
HOME_PARTS: dict[str, Callable[[ExplorerDeps], Any]] = {
    "/api/status": chain.status,
    f"/api/blocks?limit={HOME_BLOCKS}": lambda deps: chain.blocks(deps, limit=HOME_BLOCKS, before=None),
    "/api/services": chain.services,
    "/api/nodes": chain.nodes,
    "/api/storage": storage.storage,
    "/api/storage/rewards": storage.rewards,
    f"/api/storage/files?limit={HOME_LIST}": lambda deps: storage.files(deps, limit=HOME_LIST, before=None),
    f"/api/da/blobs?limit={HOME_LIST}": lambda deps: da.blobs(deps, limit=HOME_LIST, before=None),
    f"/api/compute/tasks?limit={HOME_LIST}": lambda deps: compute.tasks(deps, limit=HOME_LIST, before=None),
    "/api/compute": compute.compute,
    "/api/inft": lambda deps: inft.inft(deps, limit=20, before=None),
}


def answer(part: Callable[[ExplorerDeps], Any], deps: ExplorerDeps) -> dict[str, Any]:
    """One panel's answer as its own request would have carried it: status and JSON body."""
    try:
        return {"status": 200, "body": jsonable_encoder(part(deps))}
    except HTTPException as exc:
        return {"status": exc.status_code, "body": {"detail": exc.detail}}
    except ZgError as exc:
        return {"status": 503, "body": {"detail": exc.message}}
    except Exception as exc:  # one panel's bug must not blank the others
        log.exception("a home panel failed")
        return {"status": 500, "body": {"detail": f"internal error ({type(exc).__name__})"}}


@router.get("/home")
def home(deps: Deps) -> dict[str, dict[str, Any]]:
    with ThreadPoolExecutor(len(HOME_PARTS)) as pool:
        answers = list(pool.map(lambda part: answer(part, deps), HOME_PARTS.values()))
    return dict(zip(HOME_PARTS, answers, strict=True))
