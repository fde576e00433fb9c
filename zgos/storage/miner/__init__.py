"""The storage node's PoRA miner: seals the data its node holds, mines, submits answers, earns
the storage fees (storage.md §2.4, §3). The pure rules live in ``zgos.storage.spec``.

Parts, one job each: ``store`` (sealed pieces and answers, ``miner.sqlite``), ``reader`` (flow
sectors from the node's store), ``sealer``, ``submitter``, ``workers`` (PoRA threads), ``loop``
(the control thread), ``rpc`` (its methods, through the node RPC's hook); ``app.build_miner``
wires them.
"""
