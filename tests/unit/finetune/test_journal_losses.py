"""A task's loss curve in the provider's journal: every progress write with a loss adds a point,
and the curve served is thinned to at most ``max_points``, keeping the first and the last."""

from __future__ import annotations

from pathlib import Path

from zgos.compute.finetune.journal import Journal


def test_loss_curve_records_each_step_and_thins_to_the_cap(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.add_task(7)
        journal.set_fields(7, step=0, total_steps=1000)  # no loss yet: no point
        for step in range(1, 1001):
            journal.set_fields(7, step=step, total_steps=1000, loss=10.0 / step)
        journal.set_fields(7, step=1000, loss=0.5)  # the same step again: replaced, not added
        curve = journal.losses(7, max_points=100)
        assert len(curve) <= 100 and curve[0] == (1, 10.0) and curve[-1] == (1000, 0.5)
        assert [step for step, _ in curve] == sorted({step for step, _ in curve})
        assert len(journal.losses(7, max_points=5000)) == 1000
        assert journal.losses(8) == []
