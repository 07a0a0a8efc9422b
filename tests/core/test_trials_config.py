"""TrialsConfig refuses at validation what would fail or mislead at run time, with the field and
what is allowed (the API's 422), and counts the work the trial loop really does."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.limits import trials_samples
from optim_core.specs.jobs import TrialsConfig, TrialsJobSpec
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import SPEC, _setup

EXPERIMENT: dict[str, Any] = SPEC.model_dump(mode="json")


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
