"""A trial's LR is the one it was set to: its schedule's peak, wherever the run stopped, and the
one its label, progress, record and verdict say."""

from __future__ import annotations

import pytest

from optim_core.specs.jobs import TrialsConfig, schedule_peak_lr
from optim_core.specs.range_test import ProgressEvent
from optim_core.specs.schedule import ConstantSchedule, LinearWarmupSchedule
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import REGRESSION, _setup


def test_a_trial_that_diverges_in_its_warmup_keeps_the_lr_it_was_set_to() -> None:
    # Half the steps warm up: SGD at 10 blows up on its way to the peak.
    config = TrialsConfig(center_lr=1.0, default_optimizers=["sgd"], lr_factors=[0.1, 10.0],
                          steps=20, eval_every=20, warmup_fraction=0.5, clip_norm=None,
                          extend_edges=1)
    result = run_trials_on(*_setup(REGRESSION), config)
    hot = result.trials[1]
    assert hot.diverged and hot.diverged_at is not None and hot.diverged_at < 9
    assert max(hot.lrs) < 10.0  # the case: it stopped before reaching its peak
    assert hot.peak_lr == 10.0
    assert result.to_dict()["trials"][1]["peak_lr"] == 10.0
    # The search reads the requested grid: its step (x100) sets the extension below the winner.
    edge = result.edges["sgd"]
    assert edge["extended_lrs"] == pytest.approx([0.001])
    assert edge["grid_lrs"] == pytest.approx([0.001, 0.1, 10.0])


def test_the_peak_is_read_off_the_schedule_over_the_trials_steps() -> None:
    assert schedule_peak_lr(ConstantSchedule(lr=0.1), 5) == 0.1
    # a warmup longer than the trial: the LR the trial reaches, not the one it never reaches
    warmup = LinearWarmupSchedule(peak_lr=0.1, warmup_steps=100)
    assert schedule_peak_lr(warmup, 10) == pytest.approx(0.01)
    assert schedule_peak_lr(warmup, 200) == 0.1


def test_a_given_schedule_sets_the_candidates_lr_everywhere() -> None:
    # optimizer.lr 0.001, but the schedule trains at 0.1: everything says 0.1
    config = TrialsConfig(candidates=[
        {"optimizer": {"name": "adamw", "lr": 0.001}, "schedule": {"name": "constant", "lr": 0.1}},
        {"optimizer": {"name": "adamw", "lr": 0.01}}], steps=10, eval_every=5)
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(), config, progress=events.append)
    given, default = result.trials
    assert given.lrs == [0.1] * 10
    assert given.label == "adamw lr=0.1 constant"
    assert given.peak_lr == given.optimizer["lr"] == 0.1
    assert (default.label, default.peak_lr, default.optimizer["lr"]) == ("adamw lr=0.01", 0.01, 0.01)
    assert {(e.candidate, e.candidate_lr) for e in events} == {("adamw lr=0.1 constant", 0.1),
                                                               ("adamw lr=0.01", 0.01)}
    assert result.verdict["lr"] == 0.1 and result.verdict["label"] == "adamw lr=0.1 constant"
    assert "adamw lr=0.001" not in result.verdict["sentence"]
    assert result.edges["adamw"]["grid_lrs"] == [0.01, 0.1]
