"""The search box, ``GET /api/search?q=ID``: what an id names, each match with the page that
shows it (the page's hash route, e.g. ``#/tx/0x…``).

- 20 bytes of hex: an address.
- 32 bytes of hex: whatever has that id: a transaction or block hash, a data root on ``Flow``,
  a model in ``ModelRegistry``, a blob in ``DAEntrance``, or (when nothing on chain has it) a
  response that a registered inference provider signed (each asked through the outbound guard).
- A number: the block, fine-tuning task and agent token with that number; ``block N``,
  ``task N`` or ``token N`` asks for one kind.

A query of another shape is a 400 that says what is accepted; an id nothing has is a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import httpx
from fastapi import APIRouter, HTTPException, Query
from hexbytes import HexBytes
from web3.exceptions import BlockNotFound, TransactionNotFound

from zgos.compute.contracts import ComputeContracts
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry
from zgos.da.contracts import DAContracts, UnknownBlob
from zgos.explorer.deps import Deps, ExplorerDeps
from zgos.explorer.ids import ADDRESS_BYTES, HASH_BYTES, hex_bytes, parse_address
from zgos.explorer.models import ApiModel
from zgos.inft.contracts import InftContracts
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import FlowContract

router = APIRouter(prefix="/api")
MAX_QUERY_CHARS = 200
PROVIDER_TIMEOUT_S = 2.0  # total, per provider asked about a response id
MAX_SIGNATURE_BYTES = 16 * 1024
MAX_PROVIDERS_ASKED = 16
NUMBERED = re.compile(r"^(?:(block|task|token)\s*[:#]?\s*)?#?(\d{1,20})$")
ACCEPTED = ("an address (0x + 40 hex digits), a 32-byte id (0x + 64 hex digits: tx or block hash, data root, "
            "model id, blob id, response id) or a number (block, task or token; or 'task 3', 'token 3', 'block 3')")


class Match(ApiModel):
    kind: str  # address | tx | block | file | model | blob | response | task | token
    id: str
    label: str
    link: str  # the page's hash route


class SearchResult(ApiModel):
    query: str
    matches: list[Match]


def numbered_matches(deps: ExplorerDeps, kind: str | None, number: int) -> list[Match]:
    """The block, task and token numbered ``number`` that exist (only ``kind``, if given; only
    the networks the deployment has)."""
    chain, deployment = deps.chain(), deps.deployment()
    found = []
    if kind in (None, "block") and number <= chain.block_number():
        found.append(Match(kind="block", id=str(number), label=f"block {number}", link=f"#/block/{number}"))
    if kind in (None, "task") and "FineTuningServing" in deployment.addresses and 1 <= number <= int(chain.call(
            FineTuningMarket(chain, deployment.address("FineTuningServing")).contract.functions.taskCount())):
        found.append(Match(kind="task", id=str(number), label=f"fine-tuning task {number}", link=f"#/task/{number}"))
    if kind in (None, "token") and "AgentNFT" in deployment.addresses \
            and number < InftContracts.from_deployment(chain, deployment).token_count():
        found.append(Match(kind="token", id=str(number), label=f"agent token {number}", link=f"#/token/{number}"))
    return found


def _is_tx(deps: ExplorerDeps, key: bytes) -> bool:
    try:
        deps.chain().w3.eth.get_transaction(HexBytes(key))
    except TransactionNotFound:
        return False
    return True


def _is_block(deps: ExplorerDeps, key: bytes) -> int | None:
    try:
        return int(deps.chain().w3.eth.get_block(HexBytes(key))["number"])
    except BlockNotFound:
        return None


def _is_blob(deps: ExplorerDeps, key: bytes) -> bool:
    addresses = deps.deployment().addresses
    if "DAEntrance" not in addresses:
        return False
    try:
        DAContracts.from_addresses(deps.chain(), addresses).blob(key)
    except UnknownBlob:
        return False
    return True


def signed_response(deps: ExplorerDeps, key: bytes) -> str | None:
    """The registered inference provider that serves a signature for response ``key``, if any."""
    services = ComputeContracts.from_deployment(deps.chain(), deps.deployment()).services()[:MAX_PROVIDERS_ASKED]
    if not services:
        return None

    def serves(url: str) -> bool:
        try:
            answer = http.get(f"{url.rstrip('/')}/v1/proxy/signature/0x{key.hex()}")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    with OutboundClient(deps.data_dir.outbound_policy(), deadline_s=PROVIDER_TIMEOUT_S,
                        max_response_bytes=MAX_SIGNATURE_BYTES) as http, ThreadPoolExecutor(len(services)) as pool:
        answers = list(pool.map(serves, [s.url for s in services]))
    return next((s.provider for s, ok in zip(services, answers, strict=True) if ok), None)


def id_matches(deps: ExplorerDeps, key: bytes) -> list[Match]:
    """Everything on this chain whose id is ``key`` (then, if nothing: a signed response)."""
    chain, deployment = deps.chain(), deps.deployment()
    text = "0x" + key.hex()
    checks: list[tuple[str, str, Callable[[], object]]] = [
        ("tx", "transaction", lambda: _is_tx(deps, key)),
        ("file", "file on Flow", lambda: FlowContract(chain, deployment.address("Flow")).file_of(key)),
        ("model", "registered model", lambda: ModelRegistry(chain, deployment.address("ModelRegistry")).is_registered(key)),
        ("blob", "DA blob", lambda: _is_blob(deps, key)),
    ]
    found = [Match(kind=kind, id=text, label=label, link=f"#/{kind}/{text}") for kind, label, check in checks if check()]
    if (number := _is_block(deps, key)) is not None:
        found.append(Match(kind="block", id=str(number), label=f"block {number}", link=f"#/block/{number}"))
    if not found and (provider := signed_response(deps, key)) is not None:
        found.append(Match(kind="response", id=text, label=f"response signed by {provider}", link=f"#/response/{text}"))
    return found


@router.get("/search")
def search(deps: Deps, q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)]) -> SearchResult:
    query = q.strip()
    bare_hex = len(query) in (2 * ADDRESS_BYTES, 2 * HASH_BYTES)
    data = hex_bytes(query) if query.lower().startswith("0x") or bare_hex else None
    if data is not None and len(data) == ADDRESS_BYTES:
        address = parse_address(query)
        matches = [Match(kind="address", id=address, label="address", link=f"#/address/{address}")]
    elif data is not None and len(data) == HASH_BYTES:
        matches = id_matches(deps, data)
    elif (numbered := NUMBERED.match(query.lower())) is not None:
        matches = numbered_matches(deps, numbered.group(1), int(numbered.group(2)))
    else:
        raise HTTPException(400, detail=f"{query[:80]!r} is not an id: give {ACCEPTED}")
    if not matches:
        raise HTTPException(404, detail=f"nothing on this chain has the id {query}")
    return SearchResult(query=query, matches=matches)
