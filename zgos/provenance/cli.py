"""``zg provenance show RESPONSE_ID|MODEL_ID|ROOT``: the verified lineage as a tree or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.tree import Tree

from zgos.cli.context import console, get_ctx

if TYPE_CHECKING:
    from zgos.provenance.nodes import Node

app = typer.Typer(help="Provenance: response → model → fine-tune → dataset → uploader, verified.",
                  no_args_is_help=True)


def _mark(ok: bool | None) -> str:
    return {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]?[/]"}[ok]


def _render(node: Node, tree: Tree) -> None:
    status = "[green]verified[/]" if node.verified else "[yellow]not fully verified[/]"
    branch = tree.add(f"[bold]{escape(node.label)}[/] {escape(node.id)} ({status})")
    for key, value in node.facts.items():  # facts and checks quote on-chain strings: never markup
        branch.add(f"[dim]{key}[/] {escape(str(value))}")
    for check in node.checks:
        branch.add(f"{_mark(check.ok)} {escape(check.name)}" + (f" [dim]({escape(check.detail)})[/]" if check.detail else ""))
    for child in node.children:
        _render(child, branch)


def render(node: Node) -> Tree:
    root = Tree(f"provenance of {node.id}")
    _render(node, root)
    return root


@app.command()
def show(ctx: typer.Context, target: str = typer.Argument(..., help="Response id, model id or storage root"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Walk and verify the lineage of a response, a model or a storage root."""
    from zgos.provenance.graph import Provenance

    cli = get_ctx(ctx)
    dirs = [cli.data_dir.service("compute-user")]
    node = Provenance(cli.chain(), cli.deployment(), dirs, policy=cli.outbound_policy()).show(target)
    if as_json:
        console.print_json(json.dumps(node.to_json()))
        return
    console.print(render(node))
    checks = [c for n in node.walk() for c in n.checks]
    console.print(f"{sum(c.ok is True for c in checks)} of {len(checks)} checks verified, "
                  f"{sum(c.ok is False for c in checks)} failed, {sum(c.ok is None for c in checks)} not checkable")
