"""Refuse at submission what would not fit: parameters, steps, batch size, memory and the work
itself (torch-free).

Uses the analytic ``ExperimentSpec.param_count()`` / ``estimate_memory_bytes()``; registered
plug-in models have no analytic size (None) and are checked by the worker after building.

Steps alone do not bound a job: 5000 optimizer steps × 1024 accumulated micro-batches is hours of
training. The work budget counts what the job pushes through the model, in samples: every
optimizer step × its accumulated micro-batches × the batch size, every validation pass, and
every phase of a trials job (the range tests that measure a centre LR, each candidate's run and
its evaluations). One budget, ``max_samples``, for both kinds.
"""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec
from optim_core.specs.range_test import RangeTestConfig

MB = 1024 * 1024


def _experiment_errors(exp: ExperimentSpec, optimizer_names: list[str], s: Settings
                       ) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if exp.batch_size > s.max_batch_size:
        errors.append({"field": "experiment.batch_size", "value": exp.batch_size,
                       "allowed": f"<= {s.max_batch_size}",
                       "message": f"batch size {exp.batch_size} exceeds the limit "
                                  f"max_batch_size={s.max_batch_size}"})
    params = exp.param_count()
    if params is not None and params > s.max_params:
        errors.append({"field": "experiment.model", "value": params,
                       "allowed": f"<= {s.max_params} parameters",
                       "message": f"the model has {params} parameters, over the limit "
                                  f"max_params={s.max_params}"})
    for name in optimizer_names:
        est = exp.estimate_memory_bytes(name)
        if est is not None and est > s.max_memory_mb * MB:
            errors.append({"field": "experiment", "value": round(est / MB, 1),
                           "allowed": f"<= {s.max_memory_mb} MB",
                           "message": f"estimated training memory {est / MB:.0f} MB (with {name}) "
                                      f"exceeds the limit max_memory_mb={s.max_memory_mb}"})
            break
    return errors


def _steps_error(field: str, steps: int, s: Settings) -> list[dict[str, Any]]:
    if steps <= s.max_steps:
        return []
    return [{"field": field, "value": steps, "allowed": f"<= {s.max_steps}",
             "message": f"{steps} steps exceed the limit max_steps={s.max_steps}"}]


def range_test_samples(config: RangeTestConfig, batch_size: int) -> int:
    """Samples a range test pushes through the model: each step's accumulated micro-batches,
    plus the fixed validation batches every ``val_every`` steps."""
    train = config.num_steps * config.accumulation_steps * batch_size
    val = (config.num_steps // config.val_every) * config.val_batches * batch_size
    return train + val


def trials_samples(spec: TrialsJobSpec) -> int:
    """Samples of a whole trials job: the range tests that measure the centre LR (one per default
    optimizer, with RangeTestConfig's defaults, as optim_core.training.trials runs them), and
    each planned run's steps and evaluations (every candidate, edge extension and refinement,
    times the seeds: TrialsConfig.planned_runs; the evaluations as the trial loop makes them:
    TrialsConfig.evaluations_per_run)."""
    c, batch = spec.config, spec.experiment.batch_size
    per_trial = c.steps * batch + c.evaluations_per_run() * c.val_batches * batch
    measure = (len(c.default_optimizers)
               * range_test_samples(RangeTestConfig(num_steps=c.range_test_steps), batch)
               if c.measures_center else 0)
    return c.planned_runs() * per_trial + measure


def _work_error(field: str, samples: int, what: str, s: Settings) -> list[dict[str, Any]]:
    if samples <= s.max_samples:
        return []
    return [{"field": field, "value": samples, "allowed": f"<= {s.max_samples} samples",
             "message": f"the job would push {samples} samples through the model ({what}), "
                        f"over the limit max_samples={s.max_samples}"}]


def range_test_errors(spec: RangeTestJobSpec, s: Settings) -> list[dict[str, Any]]:
    opt = [spec.optimizer.name] if spec.optimizer is not None else ["adamw"]
    samples = range_test_samples(spec.config, spec.experiment.batch_size)
    return (_experiment_errors(spec.experiment, opt, s)
            + _steps_error("config.num_steps", spec.config.num_steps, s)
            + _work_error("config.num_steps", samples, "steps × accumulation_steps × batch_size "
                          "+ validation batches", s))


def trials_total_steps(spec: TrialsJobSpec) -> int:
    """Training steps the whole job can run: every candidate, possible edge extension and
    refinement, times the seeds, plus the range tests that measure the centre LR
    (TrialsConfig.planned_steps, the one home of that count)."""
    return spec.config.planned_steps()


def trials_errors(spec: TrialsJobSpec, s: Settings) -> list[dict[str, Any]]:
    cands = spec.config.candidates or []
    opt = sorted({c.optimizer.name for c in cands}) or ["adamw"]
    errors = (_experiment_errors(spec.experiment, opt, s)
              + _steps_error("config.steps", spec.config.steps, s)
              + _steps_error("config.range_test_steps", spec.config.range_test_steps, s))
    total = trials_total_steps(spec)
    if total > s.max_total_steps:
        # Per-trial steps alone do not bound the work: 16 candidates × 5000 steps passed.
        what = ("(candidates + edge extensions + refinements) × seeds × steps"
                + (" + range tests" if spec.config.measures_center else ""))
        errors.append({"field": "config.steps", "value": total,
                       "allowed": f"<= {s.max_total_steps} steps in all",
                       "message": f"{total} training steps in all ({what}) exceed the limit "
                                  f"max_total_steps={s.max_total_steps}"})
    errors += _work_error("config.steps", trials_samples(spec),
                          "every phase: range tests, candidates × steps × batch_size, "
                          "evaluations", s)
    return errors
