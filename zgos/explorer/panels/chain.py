"""The chain panel: ``/api/status`` (chain id, head block, deployed contracts), ``/api/blocks``
(newest first, a page at a time), ``/api/block/{number}`` and ``/api/tx/{hash}`` (with calls to
and events of our contracts decoded by name, ``zgos.explorer.decode``), ``/api/address/{address}``,
``/api/nodes`` (every NodeRegistry entry by kind), ``/api/services`` (the devnet's services,
when this data dir runs one) and ``/api/deployment`` (the deployment file itself, so another
host joins with ``zg network join --deployment http://EXPLORER/api/deployment``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict
from web3.exceptions import TransactionNotFound

from zgos.chain.registry import NodeKind, NodeRegistry, RegisteredNode
from zgos.explorer.decode import ContractBook
from zgos.explorer.deps import Deps
from zgos.explorer.ids import parse_address, parse_hash32
from zgos.explorer.models import ApiModel

MAX_BLOCKS = 50
DEFAULT_BLOCKS = 10
MAX_BLOCK_TXS = 200  # a block page lists at most this many transactions

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


class TxSummary(ApiModel):
    hash: str
    sender: str
    to: str | None
    to_name: str | None  # the deployment's name for ``to``
    method: str | None  # the function called, if ``to`` is one of our contracts
    value: str  # wei, decimal


class BlockDetail(ApiModel):
    block: BlockSummary
    parent_hash: str
    transactions: list[TxSummary]


class CallView(ApiModel):
    contract: str
    function: str
    args: dict[str, Any]


class EventView(ApiModel):
    address: str
    contract: str | None
    event: str | None
    args: dict[str, Any]
    log_index: int


class TxDetail(ApiModel):
    hash: str
    block: int
    sender: str
    to: str | None
    to_name: str | None
    value: str  # wei, decimal
    status: str  # success | reverted
    gas_used: int
    input_bytes: int
    call: CallView | None  # decoded when ``to`` is one of our contracts
    events: list[EventView]


class AddressView(ApiModel):
    address: str
    balance: str  # wei, decimal
    nonce: int
    contract: str | None  # the deployment's name, if it is one of ours
    has_code: bool


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


@router.get("/deployment")
def deployment_file(deps: Deps) -> dict[str, Any]:
    """The deployment file of this network (the format ``zg chain deploy`` writes); 404 without one."""
    return deps.deployment().to_json()


def block_summary(number: int, block: Any) -> BlockSummary:
    return BlockSummary(number=number, hash=block["hash"].to_0x_hex(), timestamp=int(block["timestamp"]),
                        transactions=len(block["transactions"]), gas_used=int(block["gasUsed"]))


@router.get("/blocks")
def blocks(deps: Deps, limit: int = DEFAULT_BLOCKS,
           before: Annotated[int | None, Query(ge=0, description="Blocks below this one (paging).")] = None,
           ) -> list[BlockSummary]:
    if not 1 <= limit <= MAX_BLOCKS:
        raise HTTPException(400, detail=f"limit must be between 1 and {MAX_BLOCKS}")
    chain = deps.chain()
    top = chain.block_number() if before is None else min(before - 1, chain.block_number())
    numbers = range(top, max(-1, top - limit), -1)
    if not numbers:
        return []
    with chain.w3.batch_requests() as batch:  # one JSON-RPC round trip for the page
        for number in numbers:
            batch.add(chain.w3.eth.get_block(number))
        found = batch.execute()
    return [block_summary(number, block) for number, block in zip(numbers, found, strict=True)]


def tx_summary(book: ContractBook | None, tx: Any) -> TxSummary:
    to = tx.get("to")
    call = book.decode_call(to, bytes(tx["input"])) if book is not None else None
    return TxSummary(hash=tx["hash"].to_0x_hex(), sender=tx["from"], to=to, to_name=book.name_of(to) if book else None,
                     method=call.function if call else None, value=str(int(tx["value"])))


def find_book(deps: Deps) -> ContractBook | None:
    """The deployment's contracts, or None where there is no deployment (nothing is decoded)."""
    return deps.book() if deps.find_deployment() is not None else None


@router.get("/block/{number}")
def block(deps: Deps, number: int) -> BlockDetail:
    chain = deps.chain()
    head = chain.block_number()
    if not 0 <= number <= head:
        raise HTTPException(404, detail=f"no block {number}: the chain is at block {head}")
    found = chain.w3.eth.get_block(number, full_transactions=True)
    book = find_book(deps)
    return BlockDetail(block=block_summary(number, found), parent_hash=found["parentHash"].to_0x_hex(),
                       transactions=[tx_summary(book, tx) for tx in found["transactions"][:MAX_BLOCK_TXS]])


@router.get("/tx/{tx_hash}")
def transaction(deps: Deps, tx_hash: str) -> TxDetail:
    key = parse_hash32(tx_hash, "transaction hash")
    chain = deps.chain()
    try:
        tx = chain.w3.eth.get_transaction(HexBytes(key))
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(key))
    except TransactionNotFound:
        raise HTTPException(404, detail=f"no transaction 0x{key.hex()} on this chain") from None
    book = find_book(deps)
    call = book.decode_call(tx.get("to"), bytes(tx["input"])) if book else None
    events = [book.decode_log(log) for log in receipt["logs"]] if book else []
    return TxDetail(
        hash="0x" + key.hex(), block=int(receipt["blockNumber"]), sender=tx["from"], to=tx.get("to"),
        to_name=book.name_of(tx.get("to")) if book else None, value=str(int(tx["value"])),
        status="success" if receipt["status"] == 1 else "reverted", gas_used=int(receipt["gasUsed"]),
        input_bytes=len(bytes(tx["input"])), call=CallView(**vars(call)) if call else None,
        events=[EventView(**vars(e)) for e in events],
    )


@router.get("/address/{address}")
def address(deps: Deps, address: str) -> AddressView:
    checksummed = parse_address(address)
    chain = deps.chain()
    book = find_book(deps)
    return AddressView(address=checksummed, balance=str(chain.balance(checksummed)),
                       nonce=chain.w3.eth.get_transaction_count(checksummed),
                       contract=book.name_of(checksummed) if book else None,
                       has_code=len(chain.w3.eth.get_code(checksummed)) > 0)


@router.get("/nodes")
def nodes(deps: Deps) -> dict[str, list[NodeEntry]]:
    registry = NodeRegistry(deps.chain(), deps.deployment().address("NodeRegistry"))
    return {kind_key(kind): [NodeEntry.of(entry) for entry in registry.nodes(kind)] for kind in NodeKind}


@router.get("/services")
def services(deps: Deps) -> list[ServiceRow]:
    return [ServiceRow.model_validate(row) for row in deps.services()]
