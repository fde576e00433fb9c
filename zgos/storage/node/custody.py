"""The node's custody statements (``zgos.storage.spec.custody``): ``zgs_getCustody``.

A node run with an operator account signs, for any finalized file it holds part of, that it holds
its shard of that file until ``CUSTODY_VALID_BLOCKS`` after its log-sync height. The statement
names the ``AlignmentRegistry`` the caller asks for: a signature for another contract binds the
node nowhere else, and what it states is true. Auditors present it to open a challenge; the
node answers with ``StorageNode.challenged_sector``.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from zgos.runtime.jsonrpc import parse_params
from zgos.storage.node.errors import DataUnavailable
from zgos.storage.node.node import StorageNode
from zgos.storage.node.rpcmodels import CustodyParams
from zgos.storage.spec.custody import (
    Custody,
    InvalidCustody,
    RegistryDomain,
    compute_custody,
    encode_custody,
    sign_custody,
)

CUSTODY_VALID_BLOCKS = 50_000  # about a week of 12-second blocks


class CustodySigner:
    """Signs custody statements with the node's operator key."""

    def __init__(self, node: StorageNode, operator: LocalAccount) -> None:
        self.node, self.operator = node, operator

    def custody(self, tx_seq: int) -> Custody:
        """The statement for file ``tx_seq``; raises ``DataUnavailable`` unless this node holds
        its shard of the file's data (finalized here, with a data segment in the shard)."""
        record = self.node.tx_by_seq(tx_seq)
        if not record.finalized:
            raise DataUnavailable(f"file {tx_seq} is not finalized on this node")
        e, shard = record.entry, self.node.shard
        valid_until = max(0, self.node.sync.state.synced_block) + CUSTODY_VALID_BLOCKS
        try:
            return compute_custody(e.seq, e.start_entry, e.size, e.start_entry + e.sectors, shard.shard_id,
                                   shard.num_shard, valid_until)
        except InvalidCustody as exc:
            raise DataUnavailable(f"this node holds no data of file {tx_seq}: {exc}") from None

    def signed(self, tx_seq: int, registry: str) -> dict[str, object]:
        custody = self.custody(tx_seq)
        domain = RegistryDomain(self.node.config.chain_id, registry)
        return encode_custody(custody, sign_custody(self.operator.key, domain, custody))

    def methods(self) -> dict[str, Any]:
        """The JSON-RPC methods to add to the node's table (``NodeRpc.add_methods``)."""
        def get_custody(params: Any) -> dict[str, object]:
            p = parse_params(CustodyParams, params)
            return self.signed(p.tx_seq, p.registry)

        return {"zgs_getCustody": get_custody}
