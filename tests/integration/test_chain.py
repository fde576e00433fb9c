"""Chain access against a real anvil: sending, reverts, nonces, deployment, launcher."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import devnet_role
from zgos.chain.anvil import Anvil, AnvilConfig
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment, deploy_all, load_deployment
from zgos.core.errors import ChainError, ConfigError, InsufficientFunds, TxReverted
from zgos.devnet.plan import PLAN
from zgos.runtime.netutil import free_port, wait_until


def test_revert_reason_is_surfaced_before_any_nonce_is_spent(
    chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    registry = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    nonce_before = chain.w3.eth.get_transaction_count(new_account.address)
    with pytest.raises(TxReverted, match=r"InvalidShard\(3, 2\)"):
        chain.transact(new_account, registry.functions.announce(0, "http://x", 3, 2, b""))
    assert chain.w3.eth.get_transaction_count(new_account.address) == nonce_before


def test_transact_returns_receipt_with_decoded_events(
    chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    registry = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    receipt = chain.transact(new_account, registry.functions.announce(0, "http://n:1", 1, 4, b""))
    (event,) = receipt.events(registry, "NodeAnnounced")
    assert event["args"]["operator"] == new_account.address
    assert (event["args"]["shardId"], event["args"]["numShard"]) == (1, 4)
    node = chain.call(registry.functions.getNode(new_account.address, 0))
    assert node[2] == "http://n:1"
    again = chain.contract("NodeRegistry", deployment.address("NodeRegistry").lower())
    assert again is registry, "a contract handle is built once per chain (building one parses its ABI)"
    assert chain.contract("Flow", deployment.address("NodeRegistry")) is not registry, "another ABI, another handle"


def test_out_of_gas_after_a_state_change_is_estimated_again_and_lands(
    chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    """A limit that was right at estimation can be short at inclusion (another sender made the
    same call dearer); the transaction is resent once with a fresh estimate, not reported failed."""
    registry = chain.contract("NodeRegistry", deployment.address("NodeRegistry"))
    announce = registry.functions.announce(0, "http://n:2", 0, 1, b"")
    nonce_before = chain.w3.eth.get_transaction_count(new_account.address)
    receipt = chain.transact(new_account, announce, gas=30_000)  # too little to store a node
    assert receipt.gas_used > 30_000
    assert chain.w3.eth.get_transaction_count(new_account.address) == nonce_before + 2
    assert chain.call(registry.functions.getNode(new_account.address, 0))[2] == "http://n:2"


def test_a_transaction_undone_by_another_in_its_block_reports_the_real_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Another transaction lands in the same block before ours and makes it revert; replayed on
    the state before the block it succeeds, so no reason is found there. A failed transaction
    changes nothing, so it is estimated again, where the revert is real by now and surfaces
    with its decoded reason, instead of a generic "reverted" message."""
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=1.0), log_path=tmp_path / "anvil.log")
    node.start()
    try:
        chain = Chain(node.url)
        plan = [item for item in PLAN if item.name == "NodeRegistry"]
        registry = chain.contract("NodeRegistry", deploy_all(
            chain, devnet_role("deployer"), tmp_path / "deployment.json", plan).address("NodeRegistry"))
        operator = devnet_role("user")
        chain.transact(operator, registry.functions.announce(0, "http://race:1", 0, 1, b""))
        chain.w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
        estimate = chain._estimate_gas
        raced: list[bool] = []

        def estimate_then_race(tx: dict) -> int:  # type: ignore[type-arg]
            gas = estimate(tx)
            if raced:
                return gas  # the resend's estimate: no second race
            raced.append(True)
            other = registry.functions.remove(0).build_transaction({  # the same removal, first in the block
                "from": operator.address, "nonce": chain.w3.eth.get_transaction_count(operator.address, "pending"),
                "gas": 200_000, "chainId": chain.chain_id, "maxFeePerGas": 100 * 10**9, "maxPriorityFeePerGas": 10**9})
            chain.w3.eth.send_raw_transaction(operator.sign_transaction(other).raw_transaction)
            threading.Thread(target=mine_when_both_wait, daemon=True).start()
            return gas

        def mine_when_both_wait() -> None:  # one block: the other removal, then ours
            pending = lambda: int(chain.w3.provider.make_request("txpool_status", [])["result"]["pending"], 16)  # noqa: E731
            wait_until(lambda: pending() == 2, 30)
            chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]

        monkeypatch.setattr(chain, "_estimate_gas", estimate_then_race)
        nonce_before = chain.w3.eth.get_transaction_count(operator.address)
        with caplog.at_level("INFO", "zgos.chain.client"), pytest.raises(TxReverted, match=r"NotAnnounced\("):
            chain.transact(operator, registry.functions.remove(0))
        assert "reverted in its block but not on the state before it" in caplog.text
        head = chain.w3.eth.get_block("latest")
        statuses = [int(chain.w3.eth.get_transaction_receipt(t)["status"]) for t in head["transactions"]]
        assert statuses == [1, 0], "the other removal and then ours, in one block"
        assert chain.w3.eth.get_transaction_count(operator.address) == nonce_before + 2, "no resend was mined"
    finally:
        node.stop()


def test_unfunded_account_gets_a_clear_error(chain: Chain) -> None:
    pauper = Account.create()
    with pytest.raises(InsufficientFunds, match="fund it first"):
        chain.transact(pauper, to=devnet_role("deployer").address, value=1)


def test_nonce_clash_from_four_threads_all_land(chain: Chain, new_account: LocalAccount) -> None:
    sink = Account.create().address
    errors: list[BaseException] = []

    def send_five() -> None:
        try:
            for _ in range(5):
                chain.transact(new_account, to=sink, value=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert chain.balance(sink) == 20
    assert chain.w3.eth.get_transaction_count(new_account.address) == 20


def test_two_chain_objects_share_nonces_like_two_processes(chain: Chain, new_account: LocalAccount) -> None:
    other = Chain(chain.rpc_url)
    sink = Account.create().address
    threads = [
        threading.Thread(target=lambda c=c: [c.transact(new_account, to=sink, value=1) for _ in range(4)])
        for c in (chain, other)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert chain.balance(sink) == 8


def test_deploy_is_idempotent(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    deployer = devnet_role("deployer")
    first = deploy_all(chain, deployer, path, PLAN)
    sent = chain.w3.eth.get_transaction_count(deployer.address)
    second = deploy_all(chain, deployer, path, PLAN)
    assert second.addresses == first.addresses
    # the deployer's nonce, not the block height: other tests' services share this chain
    assert chain.w3.eth.get_transaction_count(deployer.address) == sent, "a second deploy must send no transactions"
    assert load_deployment(path, chain.chain_id).addresses == first.addresses


def test_deployment_errors_name_the_fix(tmp_path: Path, chain: Chain, deployment_path: Path) -> None:
    with pytest.raises(ConfigError, match="no deployment"):
        load_deployment(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is for chain 31337"):
        load_deployment(deployment_path, chain_id=16602)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        load_deployment(bad)


def test_unreachable_rpc_and_wrong_chain_id(chain: Chain) -> None:
    with pytest.raises(ChainError, match="cannot reach the chain RPC"):
        Chain(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ChainError, match="wrong chain"):
        Chain(chain.rpc_url, expected_chain_id=16602)


def test_anvil_keeps_state_across_clean_restart_and_kill(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    config = AnvilConfig(port=free_port(), block_time_s=0.2, state_path=state)
    node = Anvil(config, log_path=tmp_path / "anvil.log")
    node.start()
    sink = Account.create().address
    Chain(node.url).transact(devnet_role("deployer"), to=sink, value=123)
    node.stop()
    assert json.loads(state.read_text()), "clean stop writes the state file"

    node.start()
    chain = Chain(node.url)
    assert chain.balance(sink) == 123
    chain.transact(devnet_role("deployer"), to=sink, value=1)
    import time

    time.sleep(2.5)  # longer than --state-interval: the periodic dump has run
    node.kill()

    node.start()
    try:
        assert Chain(node.url).balance(sink) == 124, "state survives kill -9"
    finally:
        node.stop()


def test_anvil_refuses_a_port_in_use(anvil: Anvil) -> None:
    clash = Anvil(AnvilConfig(port=anvil.config.port))
    with pytest.raises(ChainError, match="already in use"):
        clash.start()


def test_nonces_follow_the_chain_back_after_a_reorg(tmp_path: Path) -> None:
    """Transactions dropped by a reorg (here: ``evm_revert``) free their nonces at once; the
    next send does not wait behind a gap until a reservation expires."""
    # a block per transaction: with anvil's interval miner running beside evm_revert, the
    # reverted nonces were still counted once, at load 10 (anvil's race, not the nonce manager's)
    node = Anvil(AnvilConfig(port=free_port(), block_time_s=None), log_path=tmp_path / "anvil.log")
    node.start()
    try:
        chain = Chain(node.url)
        sender = Account.create()
        chain.transact(devnet_role("deployer"), to=sender.address, value=10**18)
        snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        sink = Account.create().address
        chain.transact(sender, to=sink, value=1)
        chain.transact(sender, to=sink, value=1)
        assert chain.w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
        assert chain.w3.eth.get_transaction_count(sender.address, "pending") == 0

        receipt = chain.transact(sender, to=sink, value=5)
        assert chain.w3.eth.get_transaction(receipt.tx_hash)["nonce"] == 0
        assert chain.balance(sink) == 5
    finally:
        node.stop()


def test_a_long_running_anvil_writes_no_state_history_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anvil's default spills every old state to ~/.foundry/anvil/tmp and never cleans it up
    after a kill; our launcher keeps history in memory only, and blocks stay readable."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    node = Anvil(
        AnvilConfig(port=free_port(), block_time_s=0.2, state_path=tmp_path / "state.json"),
        log_path=tmp_path / "anvil.log",
    )
    node.start()
    try:
        chain = Chain(node.url)
        chain.w3.provider.make_request("anvil_mine", [hex(1500)])  # type: ignore[arg-type]
        assert chain.block_number() >= 1500
        assert chain.w3.eth.get_block(16)["number"] == 16
        assert chain.balance(devnet_role("deployer").address) > 0
    finally:
        node.kill()
    spilled = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert spilled == []
