"""The devnet's port rule (``zgos.runtime.ports.service_port``): ARCHITECTURE.md's ports on the default
chain port, a private block above any other chain port, ``--port-offset`` on top of either."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.integration.clirunner import DEVNET_PORT_SPAN
from zgos.core.errors import ConfigError
from zgos.devnet.services import all_services
from zgos.runtime.datadir import DataDir
from zgos.runtime.ports import CHAIN_PORT, DA_DISPERSER_PORT
from zgos.runtime.service import DevnetOptions

ARCHITECTURE_PORTS = {
    "chain": 8545, "storage-0": 5678, "storage-1": 5679, "storage-2": 5680, "indexer": 12345,
    "da-signer-0": 34000, "da-signer-3": 34003, "da-disperser": 51001, "model": 8081,
    "provider-0": 3080, "explorer": 8000, "kv-0": 6789,
}


def service_ports(options: DevnetOptions) -> dict[str, int]:
    ports = {service.name: urlparse(service.url).port for service in all_services(options)}
    return {name: port for name, port in ports.items() if port is not None}  # the repairer has none


def test_the_default_devnet_listens_on_the_architecture_ports() -> None:
    ports = service_ports(DevnetOptions(storage_nodes=3, shards=1))
    assert {name: ports[name] for name in ARCHITECTURE_PORTS} == ARCHITECTURE_PORTS
    assert len(set(ports.values())) == len(ports)


@given(st.integers(min_value=20000, max_value=32000))
def test_a_devnet_on_another_chain_port_keeps_every_service_in_its_own_block(chain_port: int) -> None:
    ports = service_ports(DevnetOptions(chain_port=chain_port, storage_nodes=3))
    assert ports["chain"] == chain_port
    assert len(set(ports.values())) == len(ports)
    assert {port - chain_port for port in ports.values()} <= set(DEVNET_PORT_SPAN)


@given(st.sampled_from([CHAIN_PORT, 23456]), st.integers(min_value=1, max_value=1000))
def test_port_offset_moves_every_service_but_the_chain(chain_port: int, offset: int) -> None:
    plain = service_ports(DevnetOptions(chain_port=chain_port))
    moved = service_ports(DevnetOptions(chain_port=chain_port, port_offset=offset))
    assert moved["chain"] == plain["chain"]
    assert {name: port - offset for name, port in moved.items() if name != "chain"} == {
        name: port for name, port in plain.items() if name != "chain"
    }


def test_a_command_dials_its_devnets_service_and_never_the_default_of_one_the_devnet_lacks(tmp_path: Path) -> None:
    """``DataDir.devnet_service_url``: the default only where no devnet wrote the services."""
    data_dir = DataDir(tmp_path)
    default = f"127.0.0.1:{DA_DISPERSER_PORT}"
    assert data_dir.devnet_service_url("da-disperser", default, "--disperser") == default  # no network.json
    data_dir.network.write_text(json.dumps({"rpc_url": "http://127.0.0.1:20000"}))  # a chain alone
    assert data_dir.devnet_service_url("da-disperser", default, "--disperser") == default
    data_dir.network.write_text(json.dumps({"services": {"da-disperser": "grpc://127.0.0.1:20204"}}))
    assert data_dir.devnet_service_url("da-disperser", default, "--disperser") == "grpc://127.0.0.1:20204"
    data_dir.network.write_text(json.dumps({"services": {"chain": "http://127.0.0.1:20000"}}))  # --only chain
    with pytest.raises(ConfigError, match="runs no da-disperser") as error:
        data_dir.devnet_service_url("da-disperser", default, "--disperser")
    assert error.value.hint is not None and "--disperser" in error.value.hint
