"""The miner of one storage node, wired in one place: ``build_miner`` makes the ``Miner``
(store, flow reader, sealer, submitter, PoRA workers) and registers its RPC on the node's."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.storage.miner.config import MinerConfig
from zgos.storage.miner.loop import Miner
from zgos.storage.miner.rpc import RpcExtensions, register_miner_rpc
from zgos.storage.node.node import StorageNode


def build_miner(node: StorageNode, chain: Chain, account: LocalAccount, config: MinerConfig,
                rpc: RpcExtensions | None = None) -> Miner:
    """The miner of ``node`` mining with ``account``; its methods served by ``rpc`` if given.
    Nothing runs until ``Miner.start``."""
    miner = Miner(node, chain, account, config)
    if rpc is not None:
        register_miner_rpc(rpc, miner)
    return miner
