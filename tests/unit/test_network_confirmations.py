"""The confirmations a joined network asks for (``network.json``, written by ``zg network
join``) reach every chain connection of a service started in that data dir: the CLI builds the
one ``Chain`` (``CliContext.chain``) and services transact through it, never through a
connection of their own made from the bare RPC URL (which would fall back to the chain
profile's confirmations). On the session's anvil, whose profile asks for none."""

from __future__ import annotations

import json
from pathlib import Path

from zgos.chain.accounts import devnet_account
from zgos.chain.client import Chain
from zgos.cli.context import CliContext
from zgos.inft.oracle.app import OracleConfig, OracleService
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port

JOINED_CONFIRMATIONS = 2
UNUSED = "0x" + "11" * 20  # contracts (and, at port 9, a storage node) the test never calls


def joined(root: Path, chain: Chain, confirmations: int) -> CliContext:
    """A data dir that joined the session chain asking for ``confirmations``, as the CLI sees it
    with ``--rpc-url`` given too."""
    data_dir = DataDir(root)
    data_dir.root.mkdir(parents=True)
    data_dir.network.write_text(json.dumps({"rpc_url": chain.rpc_url, "chain_id": chain.chain_id,
                                            "confirmations": confirmations}))
    return CliContext(data_dir, rpc_url_flag=chain.rpc_url)


def test_the_cli_chain_takes_the_joined_networks_confirmations_over_the_chain_profile(
        chain: Chain, tmp_path: Path) -> None:
    assert Chain(chain.rpc_url).confirmations == 0, "the devnet profile asks for none"
    assert joined(tmp_path / "data", chain, JOINED_CONFIRMATIONS).chain().confirmations == JOINED_CONFIRMATIONS


def test_an_oracle_started_in_a_joined_data_dir_transacts_with_the_networks_confirmations(
        chain: Chain, tmp_path: Path) -> None:
    cli = joined(tmp_path / "data", chain, JOINED_CONFIRMATIONS)
    config = OracleConfig(state_dir=tmp_path / "oracle", nft=UNUSED, verifier=UNUSED, registry=UNUSED, flow=UNUSED,
                          storage_nodes=("http://127.0.0.1:9",), outbound=AddressPolicy(), port=free_port())
    oracle = OracleService(config, devnet_account(20), cli.chain())
    try:
        connections = (oracle.contracts.chain, oracle.registry.chain, oracle.storage.chain)
        assert {c.confirmations if c else None for c in connections} == {JOINED_CONFIRMATIONS}
    finally:
        oracle.close()
