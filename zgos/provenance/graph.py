"""The provenance walk: response → (agent INFT →) model → fine-tune task → dataset root → uploader.

Every node is read from the chain (or, for a response, fetched from the provider that signed
it) and every link is checked, and each node lists its checks with the outcome: ``ok`` True
(verified), False (checked and wrong) or None (could not be checked, with the reason). A node is
*verified* when it has checks and all of them passed. What is checked (system.md §4; 0G
records roots per task but has no lineage):

- **response**: the provider's signature over the response (EIP-712) recovers to the signer
  registered for that provider in ``InferenceServing``; the response's model id and hash are
  the provider's registered model.
- **model**: registered in ``ModelRegistry`` (the contract copies parent, dataset, trainer and
  deliverable root from a settled task, so they are facts of the chain); a base model was
  registered by the first uploader of its root; for a tuned model the id is the one the
  registry derives from its task, the task agrees with every field, the task was settled with a
  key (acknowledged), the deliverable root is a ``Flow`` submission.
- **task**: the ``TaskCreated`` event's EIP-712 signature recovers to the task's user, over the
  base model, dataset root, parameters hash and fee the contract recorded.
- **dataset / deliverable root**: a ``Flow.Submit`` event whose data root is that root: the
  uploader is its sender.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import ComputeContracts, ServiceNotRegistered
from zgos.compute.finetune.contracts import (
    FineTuningMarket,
    ModelNode,
    ModelRegistry,
    OnchainStatus,
)
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.tasks import (
    InvalidTask,
    compute_params_hash,
    recover_task_signer,
)
from zgos.core.errors import ZgError
from zgos.inft.contracts import InftContracts
from zgos.provenance.agents import REQUEST_CHECK, agent_node, requested_agent
from zgos.provenance.nodes import Check, Node
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import FlowContract, LogEntry

HTTP_TIMEOUT_S = 10.0  # total, asking a provider for a signed answer
MAX_SIGNED_BYTES = 64 * 1024  # a signed answer's record is a few hundred bytes
ZERO = b"\x00" * 32


class ProvenanceError(ZgError):
    """The thing asked about is not a known response, model or root."""


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def parse_id(text: str) -> bytes:
    """A 32-byte id given as 0x-hex; raise :class:`ProvenanceError` otherwise."""
    try:
        data = bytes.fromhex(text.lower().removeprefix("0x"))
    except ValueError:
        data = b""
    if len(data) != 32:
        raise ProvenanceError(f"{text!r} is not a 32-byte 0x id", "give a response id, model id or storage root")
    return data


class Provenance:
    """Walks lineage over one deployment. ``response_dirs`` hold users' response records."""

    def __init__(self, chain: Chain, deployment: Deployment, response_dirs: list[Path] | None = None, *,
                 policy: AddressPolicy) -> None:
        self.chain = chain
        self.policy = policy  # which addresses a provider's announced URL may name
        self.market = FineTuningMarket(chain, deployment.address("FineTuningServing"))
        self.registry = ModelRegistry(chain, deployment.address("ModelRegistry"))
        self.compute = ComputeContracts.from_deployment(chain, deployment)
        self.flow = FlowContract(chain, deployment.address("Flow"))
        self.inft = InftContracts.from_deployment(chain, deployment) if "AgentNFT" in deployment.addresses else None
        self.from_block = deployment.deploy_block
        self.response_dirs = response_dirs or []
        self._submissions: list[LogEntry] | None = None

    # --- entry point ---------------------------------------------------------------------

    def show(self, target: str) -> Node:
        """The lineage of a response id, model id or storage root."""
        key = parse_id(target)
        if self.registry.is_registered(key):
            return self.model(key)
        record = self._local_response(key)
        if record is not None:
            return self.response(key, record.get("provider"), record)
        if self.submission(key) is not None:
            return self.root(key)
        for provider in [s.provider for s in self.compute.services()]:
            if self._fetch_signed(provider, key) is not None:
                return self.response(key, provider)
        raise ProvenanceError(f"{_hex(key)} is not a registered model, a storage root on chain, or a response "
                              "any registered provider signed")

    # --- responses -----------------------------------------------------------------------

    def _local_response(self, response_id: bytes) -> dict[str, Any] | None:
        wanted = _hex(response_id)
        for directory in self.response_dirs:
            for path in sorted(directory.glob("responses-*.jsonl")) if directory.is_dir() else []:
                for line in path.read_text().splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("id") == wanted:
                        return dict(entry)
        return None

    def _fetch_signed(self, provider: str, response_id: bytes) -> str | None:
        try:
            service = self.compute.service(provider)
            with OutboundClient(self.policy, deadline_s=HTTP_TIMEOUT_S, max_response_bytes=MAX_SIGNED_BYTES) as http:
                answer = http.get(f"{service.url.rstrip('/')}/v1/proxy/signature/{_hex(response_id)}")
        except (ServiceNotRegistered, httpx.HTTPError):
            return None
        return answer.text if answer.status_code == 200 else None

    def response(self, response_id: bytes, provider: str | None, record: dict[str, Any] | None = None) -> Node:
        node = Node("response", _hex(response_id), "inference response")
        if provider is None:
            node.check("signed by the provider's registered signer", None, "no provider known for it")
            return node
        node.facts["provider"] = provider
        signed = self._fetch_signed(provider, response_id)
        if signed is None:
            node.check("signed by the provider's registered signer", None,
                       f"provider {provider} does not serve the signature (offline, unregistered, "
                       "or at an address this reader's outbound policy refuses)")
            return node
        try:
            response, signature = v.decode_response(signed)
            service = self.compute.service(provider)
        except (v.InvalidMessage, ServiceNotRegistered) as exc:
            node.check("signed by the provider's registered signer", False, str(exc))
            return node
        node.facts.update(model=response.model_id, model_hash=_hex(response.model_hash),
                          tokens=[response.input_tokens, response.output_tokens], fee=response.fee,
                          signer=service.signer)
        node.label = f"response from {response.model_id}"
        valid = v.is_valid_signature(self.compute.domain, response, signature, service.signer)
        node.check("signed by the provider's registered signer", valid, service.signer)
        node.check("names the provider's registered model", response.model_id == service.model
                   and response.model_hash == service.model_hash,
                   f"registered {service.model} {_hex(service.model_hash)}")
        node.check("response id is the signed request hash", response.request_hash == response_id)
        if record is not None and "agent" in record:
            self._agent_of(node, response_id, record)
        if self.registry.is_registered(response.model_hash):
            node.children.append(self.model(response.model_hash))
        else:
            node.children.append(Node("model", _hex(response.model_hash), response.model_id, checks=[
                Check("registered in ModelRegistry", False, "the model hash is not a registered model id")]))
        return node

    def _agent_of(self, node: Node, response_id: bytes, record: dict[str, Any]) -> None:
        agent, detail = requested_agent(self.compute.domain, response_id, record)
        node.check(REQUEST_CHECK, agent is not None, detail)
        if agent is not None:
            node.facts["agent"] = agent
            if self.inft is None:
                node.check("agent INFT on this network", False, "the deployment has no AgentNFT")
            else:
                node.children.append(agent_node(self, self.inft, agent))

    # --- models and tasks ----------------------------------------------------------------

    def model(self, model_id: bytes, depth: int = 0) -> Node:
        model = self.registry.get_model(model_id)
        node = Node("model", _hex(model_id), model.name, facts={
            "name": model.name, "licence": model.licence, "owner": model.owner, "trainer": model.trainer,
            "registered_at": model.registered_at, "base": model.parent == ZERO,
        })
        node.check("registered in ModelRegistry", True, f"owner {model.owner}")
        if model.parent == ZERO:
            node.label = f"base model {model.name}"
            entry = self.submission(model_id)
            node.check("content root on chain (Flow)", True if entry else None,
                       f"uploaded by {entry.sender} in tx {entry.tx_hash}" if entry
                       else "the model file was not uploaded to this network's storage")
            first = self.flow.file_of(model_id)
            node.check("registered by the first uploader of its root", first is not None
                       and first.submitter == model.trainer, f"uploader {first.submitter if first else 'none'}")
            return node
        node.label = f"tuned model {model.name}"
        node.facts.update(parent=_hex(model.parent), datasets=[_hex(d) for d in model.datasets],
                          task_id=model.task_id, deliverable_root=_hex(model.deliverable_root))
        node.check("id derived from its task (ModelRegistry.tunedModelId)",
                   model_id == self.registry.tuned_model_id(model.task_id), f"task {model.task_id}")
        node.children.append(self.task(model.task_id, model))
        if depth < 16 and self.registry.is_registered(model.parent):
            node.children.append(self.model(model.parent, depth + 1))
        return node

    def task(self, task_id: int, model: ModelNode | None = None) -> Node:
        task = self.market.get_task(task_id)
        node = Node("task", str(task_id), f"fine-tuning task {task_id}", facts={
            "user": task.user, "provider": task.provider, "fee": task.fee, "status": task.status.name.lower(),
            "base_model": _hex(task.base_model), "dataset_root": _hex(task.dataset_root),
            "result_root": _hex(task.result_root),
        })
        if model is not None:
            node.check("task matches the model record (parent, dataset, trainer, deliverable)",
                       task.base_model == model.parent and model.datasets == (task.dataset_root,)
                       and task.provider == model.trainer and task.result_root == model.deliverable_root)
            node.check("settled with the key released (the user acknowledged the deliverable)",
                       task.status == OnchainStatus.SETTLED and bool(task.sealed_key))
        try:
            event = self.market.task_created_event(task_id, self.from_block)
            request = self.market.task_request(task.user, task.provider, task.base_model, task.dataset_root,
                                               bytes(event["params"]), task.fee, task.nonce)
            ok = compute_params_hash(bytes(event["params"])) == task.params_hash
            recover_task_signer(self.market.domain, request, bytes(event["signature"]))
            node.facts["params"] = bytes(event["params"]).decode(errors="replace")
            node.check("ordered and signed by its user (EIP-712 over model, dataset, params, fee)", ok, task.user)
        except (LookupError, InvalidTask) as exc:
            node.check("ordered and signed by its user (EIP-712 over model, dataset, params, fee)", False, str(exc))
        node.children.append(self.root(task.dataset_root, kind="dataset", expand=False))
        if any(task.result_root):
            node.children.append(self.root(task.result_root, kind="deliverable", expand=False))
        return node

    # --- storage roots -------------------------------------------------------------------

    def submissions(self) -> list[LogEntry]:
        if self._submissions is None:
            self._submissions = self.flow.submit_events(self.from_block, self.chain.block_number())
        return self._submissions

    def submission(self, root: bytes) -> LogEntry | None:
        """The first ``Flow.Submit`` whose data root is ``root``."""
        return next((e for e in self.submissions() if e.data_root == root), None)

    def root(self, root: bytes, kind: str = "dataset", expand: bool = True) -> Node:
        entry = self.submission(root)
        node = Node(kind, _hex(root), f"{kind} root")
        if entry is None:
            node.check("root on chain (Flow submission)", False, "no Flow submission has this data root")
            return node
        node.facts.update(size=entry.size, seq=entry.seq, tx=entry.tx_hash, block=entry.block_number,
                          uploader=entry.sender)
        node.check("root on chain (Flow submission)", True, f"tx seq {entry.seq}")
        node.children.append(Node("account", entry.sender, "uploader", facts={"tx": entry.tx_hash},
                                  checks=[Check("sender of the Flow submission", True, entry.tx_hash)]))
        if expand:
            node.children.extend(self._models_trained_on(root))
        return node

    def _models_trained_on(self, root: bytes) -> list[Node]:
        count = int(self.chain.call(self.registry.contract.functions.modelCount()))
        found = []
        for index in range(count):
            model_id = bytes(self.chain.call(self.registry.contract.functions.modelAt(index)))
            if root in self.registry.get_model(model_id).datasets:
                found.append(self.model(model_id))
        return found
