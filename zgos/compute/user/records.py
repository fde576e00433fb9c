"""What a user's response record keeps beyond the signed response (``responses-<address>.jsonl``)."""

from __future__ import annotations

from typing import Any

from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import parse_chat_request


def agent_record(request: v.Request, body: bytes) -> dict[str, Any]:
    """What a response record keeps of a request that ran an agent (nothing for others): the
    agent, and the request's nonce, max fee and body, from which its hash (the response id)
    is recomputed."""
    agent = parse_chat_request(body).agent
    if agent is None:
        return {}
    return {"agent": agent, "request": {"user": request.user, "provider": request.provider,
                                        "nonce": str(request.nonce), "max_fee": str(request.max_fee),
                                        "body": body.decode(errors="surrogateescape")}}
