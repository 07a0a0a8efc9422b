"""TrialsConfig refuses at validation what would fail or mislead at run time, with the field and
what is allowed (the API's 422), and counts the work the trial loop really does."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.problems import validation_errors
from app.services.limits import trials_samples
from optim_core.specs.jobs import TrialsConfig, TrialsJobSpec
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import SPEC, _setup

EXPERIMENT: dict[str, Any] = SPEC.model_dump(mode="json")


def _job_errors(**config: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as err:
        TrialsJobSpec(experiment=EXPERIMENT, config=config)
    return validation_errors(err.value.errors())  # what the API's 422 lists


@pytest.mark.parametrize(("config", "message", "allowed"), [
    ({"schedule": "one_cycle", "steps": 2}, "one_cycle needs steps >= 3",
     ">= 3 with schedule one_cycle"),
])
def test_a_default_schedule_with_too_few_steps_is_refused_at_validation(
        config: dict[str, Any], message: str, allowed: str) -> None:
    [error] = _job_errors(**config)
    assert error["field"] == "config.steps" and error["value"] == config["steps"]
    assert message in error["message"] and error["allowed"] == allowed
    # the same rule the run applies: a config that passes builds its default schedule
    ok = TrialsConfig(**{**config, "steps": 10})
    assert ok.default_schedule(0.01).name == config["schedule"]


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5])
def test_the_default_wsd_fits_every_trial_length(fraction: float) -> None:
    # the largest warmup_fraction still leaves a step after the peak, so wsd is never refused
    for steps in range(2, 60):
        spec = TrialsConfig(schedule="wsd", steps=steps, warmup_fraction=fraction).default_schedule(0.1)
        lrs = [spec.build()(t) for t in range(steps)]
        assert max(lrs) == 0.1 and lrs[-1] == pytest.approx(0.01), (steps, lrs)


def test_candidates_with_their_own_schedules_do_not_need_the_default_one() -> None:
    own = {"optimizer": {"name": "adamw", "lr": 0.01},
           "schedule": {"name": "constant", "lr": 0.01}}
    TrialsConfig(candidates=[own], schedule="one_cycle", steps=2)
    with pytest.raises(ValidationError, match="one_cycle needs steps >= 3"):
        TrialsConfig(candidates=[own, {"optimizer": {"name": "adamw"}}], schedule="one_cycle",
                     steps=2)


def test_a_repeated_default_optimizer_is_refused() -> None:
    [error] = _job_errors(default_optimizers=["adamw", "sgd", "adamw"])
    assert error["field"] == "config.default_optimizers"
    assert "adamw more than once" in error["message"]
    assert error["allowed"] == "distinct optimizer names"
    assert TrialsConfig(default_optimizers=["adam", "adam_l2"]).default_optimizers == [
        "adam", "adam_l2"]  # one torch class, two settings: distinct


@pytest.mark.parametrize(("steps", "eval_every", "evaluations"), [(30, 20, 2), (10, 5000, 1),
                                                                  (20, 10, 2)])
def test_the_work_budget_counts_the_evaluations_a_run_makes(steps: int, eval_every: int,
                                                            evaluations: int) -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0],
                          steps=steps, eval_every=eval_every, val_batches=2, extend_edges=0)
    [trial] = run_trials_on(*_setup(), config).trials
    assert len(trial.val_steps) == config.evaluations_per_run() == evaluations
    spec = TrialsJobSpec(experiment=EXPERIMENT, config=config)
    batch = SPEC.batch_size
    assert trials_samples(spec) == steps * batch + evaluations * 2 * batch


def test_an_own_schedule_that_never_reaches_an_lr_in_the_trial_is_refused() -> None:
    # warmup 100,000 steps to 1e-9: within a 10-step trial it peaks at 1e-13, below MIN_LR
    slow = {"optimizer": {"name": "adamw"},
            "schedule": {"name": "linear_warmup", "peak_lr": 1e-9, "warmup_steps": 100_000}}
    [error] = _job_errors(candidates=[{"optimizer": {"name": "adamw"}}, slow], steps=10)
    assert error["field"] == "config.candidates[1].schedule"
    assert "below the smallest LR (1e-12)" in error["message"]
    assert error["allowed"] == "a peak >= 1e-12 within the trial's steps"
    TrialsConfig(candidates=[slow], steps=1000)  # reaches 1e-11 by then: fine


def test_evaluations_per_run_is_evaluates_after_counted() -> None:
    for steps in (2, 3, 10, 19, 20, 21, 200):
        for every in (1, 2, 7, 20, 5000):
            c = TrialsConfig(steps=steps, eval_every=every)
            assert c.evaluations_per_run() == sum(c.evaluates_after(t) for t in range(steps))
