"""``zg tour [--step N]`` and ``zg tour steps``: the command over :mod:`zgos.tour`."""

from __future__ import annotations

from typing import Annotated

import typer

from zgos.cli.context import console, get_ctx
from zgos.tour import STEPS, run_tour

TOUR_HELP = "A guided tour of the whole promise on a running devnet."
tour_app = typer.Typer(help=TOUR_HELP, invoke_without_command=True)


@tour_app.callback()
def tour_command(ctx: typer.Context, step: Annotated[int | None, typer.Option(
        "--step", help=f"Run only step N (1-{len(STEPS)}); what it needs from earlier steps is kept in "
                       "DATA_DIR/tour/state.json")] = None) -> None:
    """Upload, fine-tune, serve, chat, verify, provenance, DA, KV and INFT on a running devnet,
    each step with what it proves and its explorer link (`zg tour steps` lists them)."""
    if ctx.invoked_subcommand is None:
        run_tour(get_ctx(ctx), step)


@tour_app.command("steps")
def steps_command() -> None:
    """The tour's steps, to run one with `zg tour --step N`."""
    for step in STEPS:
        console.print(f"{step.number}. {step.title}")
