"""Refuse at submission what would not fit: parameters, steps, batch size, memory (torch-free).

Uses the analytic ``ExperimentSpec.param_count()`` / ``estimate_memory_bytes()``; registered
plug-in models have no analytic size (None) and are checked by the worker after building.
"""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from app.core.problems import ProblemError
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec

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


def range_test_errors(spec: RangeTestJobSpec, s: Settings) -> list[dict[str, Any]]:
    opt = [spec.optimizer.name] if spec.optimizer is not None else ["adamw"]
    return (_experiment_errors(spec.experiment, opt, s)
            + _steps_error("config.num_steps", spec.config.num_steps, s))


def _measuring(spec: TrialsJobSpec) -> bool:
    return spec.config.candidates is None and spec.config.center_lr is None


def trials_total_steps(spec: TrialsJobSpec) -> int:
    """Training steps the whole job can run: every candidate and possible edge extension, times
    the seeds, plus the range tests that measure the centre LR (TrialsConfig.planned_steps, the
    one home of that count)."""
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
        what = ("(candidates + edge extensions) × steps × seeds"
                + (" + range tests" if _measuring(spec) else ""))
        errors.append({"field": "config.steps", "value": total,
                       "allowed": f"<= {s.max_total_steps} steps in all",
                       "message": f"{total} training steps in all ({what}) exceed the limit "
                                  f"max_total_steps={s.max_total_steps}"})
    return errors


def limit_problem(errors: list[dict[str, Any]]) -> ProblemError:
    first = errors[0]
    detail = f"{first['field']}: {first['message']} (allowed: {first['allowed']})"
    if len(errors) > 1:
        detail += f"; and {len(errors) - 1} more"
    return ProblemError(422, "Spec exceeds a configured limit", detail, type_="resource-limit",
                        errors=errors)
