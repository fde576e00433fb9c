"""The chain client on chains unlike anvil's defaults (issue 19 §2, "chain quirks"): an RPC
that rate-limits and lacks ``eth_sendRawTransactionSync``, and reorgs deeper than one block."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from hexbytes import HexBytes

from tests.chainproxy import StrictRpcProxy
from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.confirm import wait_for_confirmations
from zgos.chain.transport import MAX_RATE_RETRIES
from zgos.core.errors import ChainError, RpcUnreachable
from zgos.runtime.netutil import free_port, wait_until


@pytest.fixture
def strict_rpc(chain: Chain) -> Iterator[StrictRpcProxy]:
    proxy = StrictRpcProxy(chain.rpc_url)
    yield proxy
    proxy.stop()


def test_reads_and_sends_survive_an_rpc_that_refuses_every_other_request_and_lacks_sync_send(
    strict_rpc: StrictRpcProxy,
) -> None:
    chain = Chain(strict_rpc.url)
    receiver = Account.create().address
    for _ in range(3):
        chain.transact(devnet_role("deployer"), to=receiver, value=10**15)
    assert chain.balance(receiver) == 3 * 10**15
    assert strict_rpc.refused >= 5, "the proxy refused requests, and the client waited them out"
    assert strict_rpc.sync_sends == 1, "one try of eth_sendRawTransactionSync, then send + poll"


def test_an_rpc_that_refuses_everything_fails_with_a_clear_error_after_bounded_retries(chain: Chain) -> None:
    proxy = StrictRpcProxy(chain.rpc_url, refuse_every=1)
    try:
        started = time.monotonic()
        with pytest.raises(ChainError, match="cannot reach the chain RPC"):
            Chain(proxy.url)
        assert proxy.refused == MAX_RATE_RETRIES + 1
        assert time.monotonic() - started < 30
    finally:
        proxy.stop()


def test_a_read_on_an_rpc_lost_mid_session_raises_a_chain_error_naming_the_cause(chain: Chain) -> None:
    """Services retry chain hiccups by catching ``ZgError``: a read must not let the HTTP
    library's own exception through (the storage node's announcer died of one)."""
    proxy = StrictRpcProxy(chain.rpc_url, refuse_every=0)
    behind_proxy = Chain(proxy.url)
    assert behind_proxy.block_number() >= 0
    proxy.stop()
    with pytest.raises(RpcUnreachable, match="cannot reach the chain RPC") as lost:
        behind_proxy.block_number()
    assert lost.value.cause == "ConnectionError"
    with pytest.raises(ChainError, match=r"lost the chain RPC at .* while preparing a transaction \(ConnectionError\)"):
        behind_proxy.transact(devnet_role("deployer"), to=Account.create().address, value=1)


@pytest.fixture(scope="module")
def reorging_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=0.5), tmp_path_factory.mktemp("reorg") / "anvil.log")
    node.start()
    yield node
    node.stop()


def test_a_receipt_waits_for_its_confirmations_and_survives_a_reorg_two_blocks_deep(reorging_anvil: Anvil) -> None:
    chain = Chain(reorging_anvil.url, confirmations=0)
    sender = devnet_role("user")
    tx = {"to": Account.create().address, "value": 1, "gas": 21_000, "maxFeePerGas": 10**10,
          "maxPriorityFeePerGas": 10**9, "nonce": chain.w3.eth.get_transaction_count(sender.address),
          "chainId": chain.chain_id, "type": 2}
    raw = bytes(sender.sign_transaction(tx).raw_transaction)
    first = chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(raw), timeout=30)
    mined_in = int(first["blockNumber"])
    assert wait_until(lambda: chain.block_number() >= mined_in + 1, 30)
    chain.w3.provider.make_request("anvil_reorg", [chain.block_number() - mined_in + 1, []])  # type: ignore[arg-type]

    confirmed = wait_for_confirmations(chain.w3, raw, first, 3, timeout_s=60, poll_s=0.1)
    assert HexBytes(confirmed["blockHash"]) != HexBytes(first["blockHash"]), "the reorg moved it"
    assert chain.block_number() >= int(confirmed["blockNumber"]) + 3
    canonical = chain.w3.eth.get_block(int(confirmed["blockNumber"]))["hash"]
    assert HexBytes(canonical) == HexBytes(confirmed["blockHash"])


def test_transact_returns_only_after_the_confirmations_the_chain_asks_for(reorging_anvil: Anvil) -> None:
    chain = Chain(reorging_anvil.url, confirmations=2)
    receipt = chain.transact(devnet_role("deployer"), to=Account.create().address, value=1)
    assert chain.block_number() >= receipt.block_number + 2
