"""The chain panel: ``/api/status`` (chain id, head block, deployed contracts), ``/api/blocks``
(the latest blocks), ``/api/nodes`` (every NodeRegistry entry by kind) and ``/api/services``
(the devnet's services, when this data dir runs one)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from zgos.chain.registry import NodeKind, NodeRegistry, RegisteredNode
from zgos.explorer.deps import Deps
from zgos.explorer.models import ApiModel

MAX_BLOCKS = 50
DEFAULT_BLOCKS = 10

router = APIRouter(prefix="/api")


class ChainStatus(ApiModel):
    rpc_url: str
    chain_id: int
    block: int
    timestamp: int  # unix s
    base_fee_per_gas: int  # wei
    contracts: dict[str, str]  # name -> address; empty without a deployment


class BlockSummary(ApiModel):
    number: int
    hash: str
    timestamp: int
    transactions: int  # how many
    gas_used: int


class NodeEntry(ApiModel):
    """A NodeRegistry entry as announced (not probed)."""

    operator: str
    url: str
    shard_id: int
    num_shard: int
    updated_at: int

    @classmethod
    def of(cls, entry: RegisteredNode) -> NodeEntry:
        return cls(operator=entry.operator, url=entry.url, shard_id=entry.shard_id, num_shard=entry.num_shard,
                   updated_at=entry.updated_at)


class ServiceRow(BaseModel):
    """A devnet service as ``zg devnet status`` shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    pid: int | None
    state: str


def kind_key(kind: NodeKind) -> str:
    """A node kind as ``/api/nodes`` names it (``STORAGE`` -> ``storage``)."""
    return kind.name.lower().replace("_", "-")


@router.get("/status")
def status(deps: Deps) -> ChainStatus:
    chain = deps.chain()
    try:
        latest = chain.w3.eth.get_block("latest")
    except Exception as exc:
        raise HTTPException(503, detail=f"chain RPC unreachable: {type(exc).__name__}") from None
    deployment = deps.find_deployment()
    return ChainStatus(
        rpc_url=chain.rpc_url, chain_id=chain.chain_id, block=int(latest["number"]),
        timestamp=int(latest["timestamp"]), base_fee_per_gas=int(latest.get("baseFeePerGas", 0)),
        contracts=deployment.addresses if deployment is not None else {},
    )


@router.get("/blocks")
def blocks(deps: Deps, limit: int = DEFAULT_BLOCKS) -> list[BlockSummary]:
    if not 1 <= limit <= MAX_BLOCKS:
        raise HTTPException(400, detail=f"limit must be between 1 and {MAX_BLOCKS}")
    chain = deps.chain()
    head = chain.block_number()
    found = []
    for number in range(head, max(-1, head - limit), -1):
        block = chain.w3.eth.get_block(number)
        found.append(BlockSummary(number=number, hash=block["hash"].to_0x_hex(), timestamp=int(block["timestamp"]),
                                  transactions=len(block["transactions"]), gas_used=int(block["gasUsed"])))
    return found


@router.get("/nodes")
def nodes(deps: Deps) -> dict[str, list[NodeEntry]]:
    registry = NodeRegistry(deps.chain(), deps.deployment().address("NodeRegistry"))
    return {kind_key(kind): [NodeEntry.of(entry) for entry in registry.nodes(kind)] for kind in NodeKind}


@router.get("/services")
def services(deps: Deps) -> list[ServiceRow]:
    return [ServiceRow.model_validate(row) for row in deps.services()]
