"""``zg tour``'s own rules: its built-in dataset is one ``zg finetune`` accepts, its training is
small, and a step run alone without what an earlier step records names that step."""

from __future__ import annotations

from pathlib import Path

import pytest

from zgos.compute.spec.dataset import DatasetQuota, parse_dataset
from zgos.compute.spec.tasks import validate_training_params
from zgos.runtime.datadir import DataDir
from zgos.tour import STEPS
from zgos.tour.state import WRITTEN_BY, StepMissing, Tour, TourState
from zgos.tour.training import DATASET, TOUR_PARAMS, dataset_jsonl

MAX_TOUR_STEPS = 16  # LoRA steps: the tour fine-tunes in well under a minute on 2 cores


def test_the_built_in_dataset_is_one_zg_finetune_accepts() -> None:
    examples = parse_dataset(dataset_jsonl(), DatasetQuota())
    assert len(examples) == len(DATASET)
    validate_training_params(TOUR_PARAMS)
    assert TOUR_PARAMS.epochs * len(examples) <= MAX_TOUR_STEPS


def test_a_step_without_its_input_names_the_step_to_run_first(tmp_path: Path) -> None:
    state = TourState.load(DataDir(tmp_path))
    with pytest.raises(StepMissing) as missing:
        state.need("response_id")
    assert "step 4" in missing.value.message and "zg tour --step 4" in (missing.value.hint or "")


def test_state_survives_between_runs_and_a_rerun_forgets_what_later_steps_derived(tmp_path: Path) -> None:
    state = TourState.load(DataDir(tmp_path))
    state.update(dataset_root="0x01", task_id=3, response_id="0x02")
    again = TourState.load(DataDir(tmp_path))
    assert again.need("task_id") == 3
    again.forget(*Tour.derived_from(1))
    assert TourState.load(DataDir(tmp_path)).values == {"dataset_root": "0x01"}


def test_every_recorded_key_is_written_by_a_step_of_the_tour() -> None:
    assert [s.number for s in STEPS] == list(range(1, len(STEPS) + 1))
    assert set(WRITTEN_BY.values()) <= {s.number for s in STEPS}


def test_zg_tour_help_names_the_steps_there_are_and_steps_lists_them() -> None:
    from typer.testing import CliRunner

    from zgos.tour.cli import tour_app

    runner = CliRunner()
    assert f"(1-{len(STEPS)})" in " ".join(runner.invoke(tour_app, ["--help"]).output.split())
    listed = runner.invoke(tour_app, ["steps"])
    assert listed.exit_code == 0 and [line.split(". ", 1)[1] for line in listed.output.splitlines()] == [
        s.title for s in STEPS]
