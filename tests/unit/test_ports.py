"""The one port table (``zgos.runtime.ports``): ARCHITECTURE.md's defaults, one port per
service, the rule that moves a devnet on another chain port, and no port literal elsewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.integration.clirunner import DEVNET_PORT_RANGE
from zgos.devnet.services import all_services
from zgos.runtime import ports
from zgos.runtime.service import DevnetOptions

ZGOS = Path(ports.__file__).parents[1]

# ARCHITECTURE.md, "Process model and ports (devnet defaults)".
ARCHITECTURE_PORTS = {
    "CHAIN_PORT": 8545,
    "STORAGE_PORT": 5678,  # + i
    "INDEXER_PORT": 12345,
    "KV_PORT": 6789,
    "INFT_ORACLE_PORT": 7070,  # + i
    "DA_SIGNER_PORT": 34000,  # + i
    "DA_DISPERSER_PORT": 51001,
    "MODEL_PORT": 8081,
    "PROVIDER_PORT": 3080,
    "PROVIDER_ADMIN_PORT": 3081,
    "FINETUNE_PORT": 3082,
    "TUNED_MODEL_PORT": 8082,
    "TUNED_BROKER_PORT": 3083,
    "TUNED_ADMIN_PORT": 3084,
    "AUDITOR_PORT": 9090,
    "EXPLORER_PORT": 8000,
}
NOT_IN_ARCHITECTURE = {"USER_PROXY_PORT": 8787}  # the user's local proxy, not a devnet service
# The most of each counted service a devnet runs: `zg devnet up --storage-nodes` allows 8;
# ARCHITECTURE.md's 3 oracles and 4 DA signers (the disperser takes the slot after them).
STORAGE_NODES, INFT_ORACLES, DA_SIGNERS = 8, 3, 4


def table() -> dict[str, int]:
    return {name: value for name, value in vars(ports).items() if name.endswith("_PORT")}


def default_ports() -> list[int]:
    """Every port the default devnet (and ARCHITECTURE.md's reserved services) listens on."""
    counted = {"STORAGE_PORT": STORAGE_NODES, "INFT_ORACLE_PORT": INFT_ORACLES, "DA_SIGNER_PORT": DA_SIGNERS}
    return [value + i for name, value in table().items() for i in range(counted.get(name, 1))]


def devnet_ports(options: DevnetOptions) -> dict[str, int]:
    found = {service.name: urlparse(service.url).port for service in all_services(options)}
    return {name: port for name, port in found.items() if port is not None}  # the repairer has none


def test_the_table_is_architecture_md() -> None:
    assert table() == {**ARCHITECTURE_PORTS, **NOT_IN_ARCHITECTURE}


def test_no_two_default_services_share_a_port() -> None:
    listening = default_ports()
    assert len(set(listening)) == len(listening)


def test_no_two_services_of_a_moved_devnet_share_a_slot_above_its_chain_port() -> None:
    deltas = [
        ports.MODEL_DELTA, ports.PROVIDER_DELTA, ports.PROVIDER_ADMIN_DELTA, ports.FINETUNE_DELTA,
        ports.TUNED_MODEL_DELTA, ports.TUNED_BROKER_DELTA, ports.TUNED_ADMIN_DELTA, ports.INDEXER_DELTA, ports.KV_DELTA,
        ports.EXPLORER_DELTA, *(ports.STORAGE_DELTA + i for i in range(STORAGE_NODES)),
        *(ports.DA_SIGNER_DELTA + i for i in range(DA_SIGNERS + 1)),  # + 1: the disperser
    ]
    assert min(deltas) > 0  # none on the chain port itself
    assert len(set(deltas)) == len(deltas)


@given(st.integers(min_value=1, max_value=65535), st.integers(min_value=0, max_value=400),
       st.integers(min_value=1, max_value=65535), st.integers(min_value=0, max_value=1000))
def test_the_rule(default: int, delta: int, chain_port: int, offset: int) -> None:
    moved = ports.service_port(default, delta, chain_port, offset)
    if chain_port == ports.CHAIN_PORT:
        assert moved == default + offset
    else:
        assert moved == chain_port + delta + offset
    assert ports.service_port(default, delta, ports.CHAIN_PORT) == default


@settings(deadline=None)  # the first example imports every network's devnet module
@given(st.integers(*DEVNET_PORT_RANGE))
def test_a_test_devnet_stays_clear_of_every_default_port(chain_port: int) -> None:
    """Test devnets take chain ports in ``DEVNET_PORT_RANGE``: their whole block lies between
    the default ports (below 20000, and the DA signers from 34000 up)."""
    moved = devnet_ports(DevnetOptions(chain_port=chain_port, storage_nodes=STORAGE_NODES))
    services = [port for name, port in moved.items() if name != "chain"]
    assert moved["chain"] == chain_port
    assert all(chain_port < port <= chain_port + ports.EXPLORER_DELTA for port in services)
    assert not set(services) & {*default_ports(), ports.CHAIN_PORT}


@settings(deadline=None)
@given(st.data())
def test_two_devnets_further_apart_than_a_block_share_no_port(data: st.DataObject) -> None:
    """What the rule promises two devnets: chain ports more than one block apart (the block:
    the chain port and the slots above it, up to the explorer's) keep every port apart."""
    low, high = DEVNET_PORT_RANGE
    first = data.draw(st.integers(low, high - ports.EXPLORER_DELTA - 2))
    second = data.draw(st.integers(first + ports.EXPLORER_DELTA + 1, high))
    one = devnet_ports(DevnetOptions(chain_port=first, storage_nodes=STORAGE_NODES))
    other = devnet_ports(DevnetOptions(chain_port=second, storage_nodes=STORAGE_NODES))
    assert not set(one.values()) & set(other.values())


def test_closer_devnets_are_not_kept_apart_by_the_rule() -> None:
    """And what it does not: a devnet's model server sits on the chain port one above it, so a
    test picks a chain port whose whole block is free (``clirunner.devnet_chain_port``)."""
    chain_port = 23456
    assert devnet_ports(DevnetOptions(chain_port=chain_port))["model"] == chain_port + 1


@pytest.mark.parametrize(("flags", "port"), [((), ports.FINETUNE_PORT), (("--port", str(ports.PROVIDER_PORT)),
                                                                         ports.PROVIDER_PORT), (("--port", "4000"), 4000)])
def test_provider_serve_finetune_defaults_to_the_finetune_port(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: tuple[str, ...], port: int) -> None:
    """``zg compute provider serve --finetune`` serves on the fine-tuning port unless ``--port``
    says otherwise (even when it names the broker's default)."""
    import zgos.compute.finetune.cli as finetune_cli
    from zgos.cli.main import app

    served: list[int] = []
    monkeypatch.setattr(finetune_cli, "serve_provider", lambda cli, **kwargs: served.append(kwargs["port"]))
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "compute", "provider", "serve", "--finetune", *flags])
    assert result.exit_code == 0, result.output
    assert served == [port]


# --- no port literal outside the table ------------------------------------------------------------

URL_PORT = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0):(\d+)")


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of the module, its classes and functions."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def port_literals(path: Path, known: set[int]) -> list[str]:
    """Where ``path``'s code (not its comments or docstrings) spells a port of the table: an int,
    or a local URL in a string."""
    tree = ast.parse(path.read_text(), str(path))
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skip:
            continue
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value in known:
            found.append(f"{path}:{node.lineno}: {value}")
        elif isinstance(value, str) and any(int(port) in known for port in URL_PORT.findall(value)):
            found.append(f"{path}:{node.lineno}: {value!r}")
    return found


def test_no_port_literal_outside_the_table() -> None:
    known = set(table().values())
    sources = [path for path in sorted(ZGOS.rglob("*.py"))
               if path != Path(ports.__file__) and "artifacts" not in path.relative_to(ZGOS).parts]
    assert len(sources) > 50
    assert [hit for path in sources for hit in port_literals(path, known)] == []


def test_the_literal_scan_sees_ints_and_urls_but_not_docstrings_or_comments(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Serves on 8545."""\n\n\ndef f(port=8545):\n    """127.0.0.1:8545"""\n'
                      '    return "http://127.0.0.1:8545", 8546  # 8545\n')
    assert sorted(hit.split(": ", 1)[1] for hit in port_literals(sample, {8545})) == [
        "'http://127.0.0.1:8545'", "8545"]
