"""What the result says won and what diverged agrees with the ranking and the verdict, in the
plain data and in the typed API result."""

from __future__ import annotations

from typing import Any

from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.results import TrialsResult
from optim_core.training.experiment import run_trials
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import REGRESSION, nan_setup
from workers.results import trials_result


def test_when_every_candidate_diverged_nothing_is_named_best() -> None:
    request: dict[str, Any] = {
        "experiment": REGRESSION.model_dump(mode="json"),
        "config": {"center_lr": 10.0, "default_optimizers": ["sgd"], "steps": 10,
                   "eval_every": 10, "clip_norm": None, "extend_edges": 0}}
    out = run_trials(request)
    d = out["result"]
    assert all(t["diverged"] for t in d["trials"])  # the case
    assert d["best"] is None and d["verdict"]["label"] is None
    typed = trials_result(out)
    assert isinstance(typed, TrialsResult) and typed.best is None


def test_a_candidate_whose_other_seed_diverged_says_it_diverged() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0, 3.0],
                          steps=6, eval_every=6, seeds=2, extend_edges=0)
    result = run_trials_on(*nan_setup(nan_seeds=(1,)), config)
    for t in result.trials:
        assert [r["diverged"] for r in t.seed_runs] == [False, True]  # the case: seed 1 only
        assert t.diverged and t.diverged_at is None and t.steps_run == 6  # seed 0's curves
        assert t.to_dict()["diverged"] is True
    assert result.to_dict()["best"] is None and result.verdict["label"] is None
