"""``zg`` starts at once: the root lists every command group without importing it, and a group
is imported only when it runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import zgos
from zgos.cli.main import COMMAND_GROUPS, load_group

HEAVY = ("web3", "eth_account", "fastapi", "grpc", "httpx", "zgos.storage", "zgos.compute", "zgos.da",
         "zgos.devnet", "zgos.explorer", "zgos.provenance", "zgos.chain.client")
LOADED = "import sys, runpy; sys.argv = ['zg', *sys.argv[1:]]\n" \
         "try:\n    runpy.run_module('zgos.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n" \
         "print('LOADED', ' '.join(sorted(m for m in sys.modules)))"


def modules_loaded_by(*args: str) -> tuple[str, set[str]]:
    answer = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=60)
    output, _, loaded = answer.stdout.rpartition("LOADED ")
    return output, set(loaded.split())


@pytest.mark.parametrize("args", [("--help",), ("version",)])
def test_help_and_version_import_no_network_and_no_chain_library(args: tuple[str, ...]) -> None:
    output, loaded = modules_loaded_by(*args)
    assert "zgos" in output
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def test_devnet_status_imports_no_chain_library_and_no_network_code(tmp_path: Path) -> None:
    """The service table and its health checks are all ``zg devnet status`` loads: web3, httpx
    and each network's own code wait for the commands that use them."""
    _, loaded = modules_loaded_by("--data-dir", str(tmp_path), "devnet", "status")
    libraries = ("web3", "eth_account", "fastapi", "grpc", "httpx", "numpy", "zgos.chain.client")
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in libraries))
    assert "zgos.devnet.services" in loaded and heavy == []


def test_the_zg_executable_answers_version_without_the_cli_framework() -> None:
    script = "import sys; sys.argv = ['zg', 'version']\nfrom zgos.cli.entry import main\nmain()\n" \
             "print('LOADED', ' '.join(sorted(sys.modules)))"
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    output, _, loaded = answer.stdout.rpartition("LOADED ")
    assert output.strip() == f"zgos {zgos.__version__}"
    assert {"typer", "rich", "click", "zgos.cli.main"}.isdisjoint(loaded.split())


def test_the_root_help_lists_every_group_with_its_own_help() -> None:
    output, _ = modules_loaded_by("--help")
    for name in COMMAND_GROUPS:
        assert f" {name} " in output
    for name, group in COMMAND_GROUPS.items():
        module, attribute = group.target.split(":")
        app = getattr(importlib.import_module(module), attribute)
        assert isinstance(app, typer.Typer)
        assert app.info.help == group.help, name  # the listing says what the group itself says


def test_a_group_is_loaded_when_it_runs() -> None:
    output, loaded = modules_loaded_by("storage", "--help")
    assert "upload" in output and "zgos.storage.cli" in loaded
    output, _ = modules_loaded_by("explorer", "serve", "--help")  # a group of one command stays a group
    assert "--port" in output


@pytest.mark.parametrize("name", sorted(COMMAND_GROUPS))
def test_every_group_loads_with_its_commands(name: str) -> None:
    group = load_group(name)
    assert group.name == name and group.commands
