"""The devnet's port rule (``zgos.runtime.ports.service_port``): ARCHITECTURE.md's ports on the default
chain port, a private block above any other chain port, ``--port-offset`` on top of either."""

from __future__ import annotations

from urllib.parse import urlparse

from hypothesis import given
from hypothesis import strategies as st

from tests.integration.clirunner import DEVNET_PORT_SPAN
from zgos.devnet.services import all_services
from zgos.runtime.ports import CHAIN_PORT
from zgos.runtime.service import DevnetOptions

ARCHITECTURE_PORTS = {
    "chain": 8545, "storage-0": 5678, "storage-1": 5679, "storage-2": 5680, "indexer": 12345,
    "da-signer-0": 34000, "da-signer-3": 34003, "da-disperser": 51001, "model": 8081,
    "provider-0": 3080, "explorer": 8000,
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
