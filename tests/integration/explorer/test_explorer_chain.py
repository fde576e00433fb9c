"""The explorer's chain client (``zgos.explorer.deps.ExplorerChain``) answers every view call as
``Chain.call`` does, on the session chain: single values, tuples, structs, arrays of structs,
reverts (the same ``TxReverted`` message) and an address without code."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account
from web3.contract.contract import ContractFunction
from web3.exceptions import BadFunctionCallOutput

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.core.errors import TxReverted
from zgos.explorer.deps import ExplorerChain


def answer(chain: Chain, fn: ContractFunction) -> Any:
    try:
        return ("ok", chain.call(fn))
    except TxReverted as exc:
        return ("reverted", str(exc))


def test_view_calls_answer_as_chain_call_does(chain: Chain, deployment: Deployment) -> None:
    fast = ExplorerChain(chain.rpc_url)
    flow = chain.contract("Flow", deployment.address("Flow"))
    nodes = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    models = chain.contract("ModelRegistry", deployment.address("ModelRegistry"))
    calls = [
        flow.functions.numSubmissions(), flow.functions.tree(), flow.functions.getContext(),
        flow.functions.fileOf(os.urandom(32)), nodes.functions.getNodesPage(0, 0, 10),
        nodes.functions.getNode(Account.create().address, 0), models.functions.modelCount(),
        models.functions.getModel(os.urandom(32)),  # an unknown model: a revert
        models.functions.isRegistered(os.urandom(32)),
    ]
    for fn in calls:
        assert answer(fast, fn) == answer(chain, fn), fn.fn_name
    assert any(answer(chain, fn)[0] == "reverted" for fn in calls), "no revert was compared"
    nowhere = chain.contract("Flow", Account.create().address).functions.numSubmissions()
    with pytest.raises(BadFunctionCallOutput):
        fast.call(nowhere)
