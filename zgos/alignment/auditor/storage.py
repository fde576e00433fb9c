"""Storage audits: off-chain spot checks and on-chain challenges of announced nodes (issue 17 §2).

Both start from the node's own signed ``Custody`` of a random file (``zgs_getCustody``,
:mod:`zgos.storage.spec.custody`): a node is only asked about data it says it holds, and its
signature makes a failure its fault. A node that signs custody of no file has nothing to audit.

- A **spot check** fetches one random segment of the node's shard of that file and checks it
  with its proof against the file's root as ``Flow`` recorded it (:func:`validate_segment`). A
  missing or wrong segment is a ``STORAGE`` finding with the custody as evidence; an
  unreachable node a ``REFUSAL``. Cheap: one segment, no gas.
- A **challenge** opens ``AlignmentRegistry.openChallenge`` with that custody; the chain draws
  the sector from a future block hash and slashes the node if it does not answer in time
  (``slashUnanswered``: anyone may call it; the auditor does in every round, ``Auditor.settle_challenges``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from zgos.alignment.auditor.findings import REFUSAL_DELTA, STORAGE_DELTA, Observation
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.chain.client import Chain
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.outbound import OutboundClient
from zgos.storage.contracts import FlowContract, LogEntry
from zgos.storage.nodeclient import NodeConnection, NodeRefused, StorageError
from zgos.storage.spec.custody import Custody, recover_custody_signer
from zgos.storage.spec.flow import compute_segment_count
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof, validate_segment
from zgos.storage.spec.shard import ShardConfig, compute_shard_segments

SPOT_CHECK = "storage-spot-check"
MAX_FILE_TRIES = 8  # files asked for custody before a node counts as holding nothing
NODE_DEADLINE_S = 30.0


@dataclass(frozen=True)
class StorageNodeRef:
    operator: str
    url: str


@dataclass(frozen=True)
class HeldFile:
    """A file a node signed custody of, and the file as the chain records it."""

    entry: LogEntry
    custody: Custody
    signature: bytes


class StorageAudit:
    def __init__(self, chain: Chain, flow: FlowContract, contracts: AlignmentContracts, policy: AddressPolicy,
                 from_block: int, rng: random.Random) -> None:
        self.chain = chain
        self.flow = flow
        self.contracts = contracts
        self.policy = policy
        self.rng = rng
        self._entries: list[LogEntry] = []
        self._scanned_to = from_block - 1

    def entries(self) -> list[LogEntry]:
        """Every file submitted to ``Flow`` so far (read incrementally)."""
        head = self.chain.block_number()
        if head > self._scanned_to:
            self._entries += self.flow.submit_events(self._scanned_to + 1, head)
            self._scanned_to = head
        return self._entries

    def held_file(self, connection: NodeConnection, operator: str) -> HeldFile | None:
        """A random file ``operator``'s node signs custody of, its statement checked against
        the chain; None when it signs none of ``MAX_FILE_TRIES`` files."""
        entries = self.entries()
        domain = self.contracts.domain()
        for entry in self.rng.sample(entries, min(len(entries), MAX_FILE_TRIES)):
            try:
                custody, signature = connection.custody(entry.seq, self.contracts.registry.address)
            except NodeRefused:
                continue
            if custody.tx_seq != entry.seq or custody.start_sector != entry.start_entry:
                continue  # a statement about something else: nothing to hold it to
            if recover_custody_signer(domain, custody, signature).lower() != operator.lower():
                continue
            return HeldFile(entry, custody, signature)
        return None

    def spot_check(self, node: StorageNodeRef) -> Observation | None:
        """One random segment of one file the node holds (None: it holds no file)."""
        with OutboundClient(self.policy, deadline_s=NODE_DEADLINE_S) as http:
            connection = NodeConnection(node.url, http)
            try:
                held = self.held_file(connection, node.operator)
            except (StorageError, httpx.HTTPError) as exc:
                return Observation(node.operator, BondKind.STORAGE, SPOT_CHECK, Finding.REFUSAL, REFUSAL_DELTA,
                                   f"unreachable: {exc}", {"url": node.url})
            if held is None:
                return None
            return self._check_segment(node, connection, held)

    def _check_segment(self, node: StorageNodeRef, connection: NodeConnection, held: HeldFile) -> Observation:
        entry, custody = held.entry, held.custody
        shard = ShardConfig(custody.shard_id, custody.num_shard)
        indexes = compute_shard_segments(entry.start_entry, compute_segment_count(entry.size), shard)
        index = self.rng.choice(indexes)
        evidence = {"url": node.url, "tx_seq": entry.seq, "root": "0x" + entry.data_root.hex(), "segment": index,
                    "custody": list(custody.as_abi()), "custody_signature": "0x" + held.signature.hex()}
        try:
            data, proof = connection.get_segment(entry.seq, index)
            validate_segment(SegmentWithProof(entry.data_root, data, index, proof, entry.size), entry.data_root,
                             entry.size)
        except (StorageError, InvalidSegment) as exc:
            return Observation(node.operator, BondKind.STORAGE, SPOT_CHECK, Finding.STORAGE, STORAGE_DELTA,
                               f"segment {index} of file {entry.seq}, held by its own custody: {exc}", evidence)
        return Observation(node.operator, BondKind.STORAGE, SPOT_CHECK, evidence=evidence)

    def challenge_target(self, node: StorageNodeRef) -> HeldFile | None:
        """A random file the node holds, with its signed custody, to challenge on chain (None:
        it holds none, or is unreachable, which its spot check reports)."""
        with OutboundClient(self.policy, deadline_s=NODE_DEADLINE_S) as http:
            try:
                return self.held_file(NodeConnection(node.url, http), node.operator)
            except (StorageError, httpx.HTTPError):
                return None
