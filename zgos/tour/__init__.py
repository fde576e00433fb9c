"""``zg tour``: the whole promise of zgos, step by step, on a running devnet.

Eight steps, each printing what it proves, what it checked and the explorer page that shows
it: (1) upload a dataset and check its root, (2) fine-tune on it, (3) see the tuned model
served, (4) chat with it through the local OpenAI proxy, (5) verify the answer, (6) walk its
provenance back to the dataset, (7) post a DA blob and sample it, (8) write and read a KV value
and mint the agent as an INFT. ``zg tour --step N`` runs one step; what later steps need is
kept in ``DATA_DIR/tour/state.json`` (:mod:`zgos.tour.state`), and a step whose input is
missing says which step to run first. A thin layer over the networks' clients and CLI helpers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table

from zgos.cli.context import CliContext, console
from zgos.core.errors import ConfigError
from zgos.tour import answers, networks, training
from zgos.tour.state import Guide, Tour, TourState, explorer_url


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    run: Callable[[Tour], None]


STEPS = (
    Step(1, "upload a dataset", training.upload_dataset),
    Step(2, "fine-tune on it", training.finetune),
    Step(3, "serve the tuned model", training.serve),
    Step(4, "chat through the OpenAI proxy", answers.chat),
    Step(5, "verify the response", answers.verify),
    Step(6, "walk its provenance back to the dataset", answers.provenance),
    Step(7, "post a DA blob and sample it", networks.post_blob),
    Step(8, "write and read a KV value, mint the agent as an INFT", networks.kv_and_agent),
)


def check_devnet(cli: CliContext) -> None:
    """A clear error unless a devnet (chain and deployment) answers for this data dir."""
    if not cli.data_dir.deployment.is_file():
        raise ConfigError(f"no devnet in {cli.data_dir.root}", "start one with `make up` or `zg devnet up`")
    cli.deployment()  # raises if the chain does not answer or holds another deployment


def run_step(tour: Tour, step: Step) -> float:
    """Run ``step`` with its heading; its duration in seconds."""
    tour.guide.console.rule(f"[bold]step {step.number}/{len(STEPS)}: {step.title}")
    started = time.monotonic()
    step.run(tour)
    elapsed = time.monotonic() - started
    tour.guide.console.print(f"  [dim]step {step.number} done in {elapsed:.1f} s[/]")
    return elapsed


def summary(times: dict[int, float]) -> Table:
    table = Table("step", "what", "seconds", title="zg tour")
    for number, elapsed in times.items():
        table.add_row(str(number), STEPS[number - 1].title, f"{elapsed:.1f}")
    table.add_row("", "total", f"{sum(times.values()):.1f}")
    return table


def run_tour(cli: CliContext, step: int | None) -> None:
    """Every step in order, or only ``step``; a summary of the times after the whole tour."""
    if step is not None and not 1 <= step <= len(STEPS):
        raise ConfigError(f"there is no step {step}", f"the tour has steps 1 to {len(STEPS)}: `zg tour --help`")
    check_devnet(cli)
    tour = Tour(cli, TourState.load(cli.data_dir), Guide(console, explorer_url(cli.data_dir)))
    chosen = STEPS if step is None else (STEPS[step - 1],)
    times = {s.number: run_step(tour, s) for s in chosen}
    if step is None:
        console.print(summary(times))
        console.print(f"everything above is on the explorer: {tour.guide.explorer_url or '`zg explorer serve`'}")
