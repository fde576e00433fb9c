"""Agent NFTs in the lineage graph: response → agent INFT → tuned model (issue 16 §6).

A response answered by a sealed executor links to the agent that ran it through the user's
own record of the request (the provider signs its hash; the body names the agent). The agent's
node shows the token as the chain holds it, and, when its adapter's description names a tuned
model (:mod:`zgos.inft.spec.agents`), continues into that model, its task and its dataset.
What is checked:

- **request → agent**: the recorded request (user, provider, nonce, body hash, max fee) hashes
  to the response id the provider signed, and its body names the agent;
- **agent**: the token exists, each data item's ciphertext root is a ``Flow`` submission;
- **adapter → tuned model**: the named model is a tuned model in ``ModelRegistry``, and the
  account that wrote the token's descriptions (its last ``mint`` or ``update``) owns that
  model. The sealed adapter's bytes are not compared with the task's deliverable: only its
  owner and the executors it grants can read them.
"""

from __future__ import annotations

from typing import Any, Protocol

from zgos.compute.finetune.contracts import ModelRegistry
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import InvalidChatRequest, parse_chat_request
from zgos.core.errors import TxReverted
from zgos.inft.contracts import InftContracts
from zgos.inft.spec.agents import InvalidAgent, compute_agent_layout
from zgos.provenance.nodes import Node
from zgos.storage.contracts import LogEntry

REQUEST_CHECK = "the signed request named this agent (recorded body hashes into the response id)"


class Lineage(Protocol):
    """What the agent's node needs of the walk (:class:`zgos.provenance.graph.Provenance`)."""

    registry: ModelRegistry
    from_block: int

    def submission(self, root: bytes) -> LogEntry | None: ...

    def model(self, model_id: bytes, depth: int = 0) -> Node: ...


def requested_agent(domain: v.Domain, response_id: bytes, record: dict[str, Any]) -> tuple[int | None, str]:
    """The agent a response record says its request ran, if the recorded request hashes to
    ``response_id`` and its body names that agent; else None and why not."""
    try:
        fields = record["request"]
        body = str(fields["body"]).encode(errors="surrogateescape")
        request = v.Request(v.normalize_address(fields["user"]), v.normalize_address(fields["provider"]),
                            int(fields["nonce"]), v.compute_body_hash(body), int(fields["max_fee"]))
        agent = parse_chat_request(body).agent
    except (KeyError, TypeError, ValueError, InvalidChatRequest, v.InvalidMessage) as exc:
        return None, f"the recorded request is unreadable ({type(exc).__name__})"
    if v.compute_request_hash(domain, request) != response_id:
        return None, "the recorded request does not hash to this response id"
    if agent is None or agent != record.get("agent"):
        return None, "the recorded body names no agent, or another one"
    return agent, f"agent {agent}"


def agent_node(provenance: Lineage, inft: InftContracts, token_id: int) -> Node:
    node = Node("agent", str(token_id), f"agent INFT {token_id}")
    try:
        token = inft.token(token_id)
    except TxReverted:
        node.check("minted in AgentNFT", False, f"token {token_id} does not exist")
        return node
    node.facts.update(owner=token.owner, data=[{"description": d.description, "root": "0x" + d.data_hash.hex()}
                                               for d in token.datas])
    node.check("minted in AgentNFT", True, f"owner {token.owner}")
    for index, data in enumerate(token.datas):
        entry = provenance.submission(data.data_hash)
        node.check(f"item {index} ({data.description[:40]}) stored: its ciphertext root is on Flow", entry is not None,
                   f"uploaded in tx {entry.tx_hash}" if entry else "no Flow submission has this root")
    try:
        layout = compute_agent_layout([d.description for d in token.datas])
    except InvalidAgent as exc:
        node.check("its data forms an agent (a prompt, at most one adapter)", False, str(exc))
        return node
    if layout.tuned_model is not None:
        _link_tuned_model(provenance, inft, node, token_id, layout.tuned_model)
    return node


def _link_tuned_model(provenance: Lineage, inft: InftContracts, node: Node, token_id: int, model_id: bytes) -> None:
    node.facts["tuned_model"] = "0x" + model_id.hex()
    registry = provenance.registry
    registered = registry.is_registered(model_id)
    model = registry.get_model(model_id) if registered else None
    node.check("its adapter names a registered tuned model", model is not None and any(model.parent),
               "0x" + model_id.hex())
    if model is None:
        return
    writer = inft.description_writer(token_id, provenance.from_block)
    node.check("the model's owner declared the adapter (wrote the token's descriptions)", writer == model.owner,
               f"written by {writer or 'unknown'}; model owner {model.owner}")
    node.children.append(provenance.model(model_id))
