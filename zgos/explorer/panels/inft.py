"""The INFT panel, ``GET /api/inft``: the verifier's oracle set and threshold, and the agent NFTs
newest first, a page at a time (owner, data descriptions and storage roots, authorized users);
``GET /api/inft/token/{id}``: one agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from zgos.explorer.deps import Deps
from zgos.explorer.models import ApiModel
from zgos.inft.contracts import InftContracts, Token

router = APIRouter(prefix="/api")
MAX_PAGE = 100


class AgentData(ApiModel):
    description: str
    data_hash: str  # 0x-hex: the ciphertext's storage root


class AgentToken(ApiModel):
    token_id: int
    owner: str
    datas: list[AgentData]
    authorized: list[str]

    @classmethod
    def of(cls, token: Token) -> AgentToken:
        return cls(token_id=token.token_id, owner=token.owner, authorized=list(token.authorized),
                   datas=[AgentData(description=d.description, data_hash="0x" + d.data_hash.hex()) for d in token.datas])


class InftState(ApiModel):
    oracles: list[str]
    threshold: int
    total: int
    tokens: list[AgentToken]


@router.get("/inft")
def inft(deps: Deps, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
         before: Annotated[int | None, Query(ge=0, description="Token ids below this one (paging).")] = None) -> InftState:
    contracts = InftContracts.from_deployment(deps.chain(), deps.deployment())
    oracles, threshold = contracts.oracles()
    total = contracts.token_count()
    top = total if before is None else min(before, total)
    ids = range(top - 1, max(top - limit, 0) - 1, -1)
    return InftState(oracles=oracles, threshold=threshold, total=total,
                     tokens=[AgentToken.of(contracts.token(i)) for i in ids])


@router.get("/inft/token/{token_id}")
def token(deps: Deps, token_id: int) -> AgentToken:
    contracts = InftContracts.from_deployment(deps.chain(), deps.deployment())
    total = contracts.token_count()
    if not 0 <= token_id < total:
        raise HTTPException(404, detail=f"no agent token {token_id} ({total} minted so far, numbered from 0)")
    return AgentToken.of(contracts.token(token_id))
