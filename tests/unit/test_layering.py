"""The dependency contract (``tools/layering.py``, also run by ``make lint``): the tree keeps it,
and each rule catches what it says on a small made-up tree."""

from __future__ import annotations

from pathlib import Path

from tools.layering import KNOWN_VIOLATIONS, check, report


def test_the_tree_keeps_the_layering_contract() -> None:
    problems = report(check(), KNOWN_VIOLATIONS)
    assert not problems, "\n".join(problems)


def keys_of(tmp_path: Path, files: dict[str, str]) -> set[str]:
    """The violations ``check`` finds in a tree made of ``files`` (path -> source)."""
    for name, source in {"zgos/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return {v.key for v in check(tmp_path)}


def test_an_import_of_a_higher_layer_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    keys = keys_of(tmp_path, {"zgos/chain/deploy.py": "import os\nfrom zgos.da.spec import params\n",
                              "zgos/da/spec/params.py": "from zgos.chain import deploy\n"})
    assert "layer: zgos.chain.deploy -> zgos.da.spec.params" in keys
    assert "layer: zgos.da.spec.params -> zgos.chain.deploy" not in keys  # down is fine
    (violation,) = [v for v in check(tmp_path) if v.key.startswith("layer")]
    assert violation.message.startswith("zgos/chain/deploy.py:2: rule 1, layers")


def test_a_network_uses_another_only_through_its_client_surface(tmp_path: Path) -> None:
    keys = keys_of(tmp_path, {
        "zgos/storage/client.py": "", "zgos/storage/spec/merkle.py": "", "zgos/storage/node/node.py": "",
        "zgos/compute/finetune/user.py":
            "from zgos.storage.client import StorageClient\nfrom zgos.storage.spec import merkle\n"
            "def f():\n    from zgos.storage.node.node import StorageNode\n",
    })
    assert keys == {"private: zgos.compute.finetune.user -> zgos.storage.node.node"}


def test_cli_modules_are_the_top_layer_wherever_they_sit(tmp_path: Path) -> None:
    keys = keys_of(tmp_path, {
        "zgos/cli/context.py": "", "zgos/devnet/orchestrator.py": "",
        "zgos/chain/cli.py": "from zgos.cli.context import get_ctx\nfrom zgos.devnet import orchestrator\n",
        "zgos/storage/speccli.py": "from zgos.cli.context import get_ctx\n",
        "zgos/chain/client.py": "from zgos.chain.cli import chain_app\n",
    })
    assert keys == {"layer: zgos.chain.client -> zgos.chain.cli"}


def test_a_deferred_import_does_not_hide_a_cycle(tmp_path: Path) -> None:
    keys = keys_of(tmp_path, {
        "zgos/storage/node/__init__.py": "",
        "zgos/storage/node/node.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .peersync import P\n",
        "zgos/storage/node/peersync.py": "def owner():\n    from . import node\n",
    })
    assert keys == {"cycle: zgos.storage.node.node <-> zgos.storage.node.peersync"}
    (violation,) = check(tmp_path)
    assert "zgos/storage/node/node.py:3 -> zgos.storage.node.peersync (deferred: under TYPE_CHECKING)" \
        in violation.message
    assert "zgos/storage/node/peersync.py:2 -> zgos.storage.node.node (deferred: in a function)" in violation.message


def test_networks_may_not_use_each_others_clients(tmp_path: Path) -> None:
    keys = keys_of(tmp_path, {"zgos/da/client.py": "import zgos.storage.client\n",
                              "zgos/storage/client.py": "from zgos.da.client import DAClient\n"})
    assert "network cycle: zgos.da <-> zgos.storage" in keys


def test_every_module_has_a_layer_and_the_known_list_only_shrinks(tmp_path: Path) -> None:
    assert keys_of(tmp_path, {"zgos/newthing.py": ""}) == {"unassigned: zgos.newthing"}
    problems = report(check(tmp_path), {"unassigned: zgos.newthing": "placed later", "layer: a -> b": "fixed"})
    assert problems == ["fixed, remove it from KNOWN_VIOLATIONS: layer: a -> b"]
