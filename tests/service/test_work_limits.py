"""Submission limits count the real work: steps × accumulated micro-batches × batch size, plus
validation, over every phase of a job (unit tests of app.services.limits; no Redis)."""

from __future__ import annotations

from app.core.config import Settings
from app.services.limits import (
    range_test_errors,
    range_test_samples,
    trials_errors,
    trials_samples,
)
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec
from optim_core.specs.range_test import RangeTestConfig

EXPERIMENT = {"data": {"kind": "digits"}, "model": {"kind": "mlp", "hidden": [8]},
              "batch_size": 32}


def test_gradient_accumulation_counts() -> None:
    # The case: 5000 steps × 1024 micro-batches passed every per-field limit.
    spec = RangeTestJobSpec.model_validate(
        {"experiment": EXPERIMENT, "config": {"num_steps": 5000, "accumulation_steps": 1024}})
    errors = range_test_errors(spec, Settings())
    work = next(e for e in errors if e["allowed"].endswith("samples"))
    assert work["value"] == 5000 * 1024 * 32 + (5000 // 10) * 4 * 32
    assert "max_samples=20000000" in work["message"]
    assert "accumulation_steps" in work["message"]
    # The same sweep without accumulation is well within the budget.
    plain = RangeTestJobSpec.model_validate({"experiment": EXPERIMENT,
                                             "config": {"num_steps": 5000}})
    assert range_test_errors(plain, Settings()) == []


def test_range_test_samples_pin_each_term() -> None:
    cfg = RangeTestConfig(num_steps=100, accumulation_steps=4, val_every=10, val_batches=2)
    assert range_test_samples(cfg, 8) == 100 * 4 * 8 + 10 * 2 * 8


def test_every_trials_phase_counts() -> None:
    spec = TrialsJobSpec.model_validate({"experiment": EXPERIMENT, "config": {
        "steps": 100, "eval_every": 20, "val_batches": 3, "default_optimizers": ["adamw", "sgd"],
        "lr_factors": [0.5, 1.0, 2.0], "range_test_steps": 50}})
    per_trial = 100 * 32 + 5 * 3 * 32
    range_tests = 2 * range_test_samples(RangeTestConfig(num_steps=50), 32)
    # six planned candidates and, per optimizer, extend_edges (2) possible extensions
    assert trials_samples(spec) == (6 + 2 * 2) * per_trial + range_tests
    given = spec.model_copy(update={"config": spec.config.model_copy(update={"center_lr": 0.01})})
    assert trials_samples(given) == 10 * per_trial  # no range tests when the centre is given
    # every seed trains every run again; a refinement adds two runs per optimizer
    more = spec.config.model_copy(update={"seeds": 3, "refine": True})
    assert trials_samples(spec.model_copy(update={"config": more})) == (
        (6 + 2 * 2 + 2 * 2) * 3 * per_trial + range_tests)
    assert more.planned_runs() == (6 + 2 * 2 + 2 * 2) * 3


def test_trials_over_the_work_budget_are_refused() -> None:
    big = {**EXPERIMENT, "batch_size": 4096}
    spec = TrialsJobSpec.model_validate({"experiment": big, "config": {
        "steps": 2000, "default_optimizers": ["adamw"], "lr_factors": [0.3, 1.0, 3.0]}})
    errors = trials_errors(spec, Settings())
    assert any(e["allowed"].endswith("samples") and e["field"] == "config.steps"
               for e in errors), errors
    assert trials_errors(spec, Settings(max_samples=10**9)) == []
