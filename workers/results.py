"""The one adapter from the training entry points' plain data to the typed job results
(:mod:`optim_core.specs.results`). The worker stores what this returns; the API, the dashboard
and clients read only the typed shape."""

from __future__ import annotations

from typing import Any

from optim_core.specs.results import (
    Curve,
    MeasuredCenter,
    RangeTestResult,
    RunInfo,
    TrialResult,
    TrialsResult,
    ValidationCurve,
)


def _run(out: dict[str, Any]) -> RunInfo:
    return RunInfo(device=out["device"], seed=out["seed"], seconds=out["seconds"],
                   param_count=out["param_count"],
                   param_count_analytic=out.get("param_count_analytic"), data=out["data"],
                   versions=out["versions"])


def _curve(r: dict[str, Any]) -> Curve:
    return Curve(points=len(r["lrs"]), lrs=r["lrs"], losses=r["losses"],
                 raw_losses=r["raw_losses"])


def _validation(steps: list[int] | None, losses: list[Any] | None) -> ValidationCurve | None:
    if not steps:
        return None
    return ValidationCurve(points=len(steps), steps=steps, losses=losses or [])


def range_test_result(out: dict[str, Any]) -> RangeTestResult:
    """``optim_core.training.experiment.run_range_test``'s dict -> the typed result."""
    r = out["result"]
    return RangeTestResult(curve=_curve(r), steps_run=r["steps_run"],
                           stop_reason=r["stop_reason"],
                           validation=_validation(r.get("val_steps"), r.get("val_losses")),
                           suggestions=r["suggestions"], optimizer=out["optimizer"],
                           param_groups=out.get("param_groups"), run=_run(out))


def _trial(t: dict[str, Any]) -> TrialResult:
    return TrialResult(
        label=t["label"], phase=t["phase"], optimizer=t["optimizer"], schedule=t["schedule"],
        schedule_source=t["schedule_source"],
        clip_norm=t["clip_norm"], peak_lr=t["peak_lr"], clipped_lrs=t.get("clipped_lrs", []),
        curve={"points": len(t["lrs"]), "lrs": t["lrs"], "train_losses": t["train_losses"],
               "smoothed_train_losses": t["smoothed_train_losses"]},
        validation=_validation(t.get("val_steps"), t.get("val_losses")),
        final_train_loss=t["final_train_loss"], final_val_loss=t["final_val_loss"],
        best_train_loss=t["best_train_loss"], best_val_loss=t["best_val_loss"],
        diverged=t["diverged"], diverged_at=t["diverged_at"], steps_run=t["steps_run"],
        seconds_per_step=t["seconds_per_step"], param_groups=t["param_groups"],
        seed_runs=t["seed_runs"], score_mean=t["score_mean"], score_std=t["score_std"])


def trials_result(out: dict[str, Any]) -> TrialsResult:
    """``optim_core.training.experiment.run_trials``'s dict -> the typed result."""
    r = out["result"]
    conf = r.get("center_lr_confidence") or {}
    flags = r.get("center_lr_flags") or {}
    centers = r.get("center_lr") or {}
    measured = [MeasuredCenter(optimizer=name, center_lr=centers[name],
                               confidence=conf.get(name), flags=flags.get(name, []),
                               curve=_curve(rt), steps_run=rt["steps_run"],
                               stop_reason=rt["stop_reason"], suggestions=rt["suggestions"])
                for name, rt in (r.get("range_tests") or {}).items()]
    return TrialsResult(
        candidates=[_trial(t) for t in r["trials"]], ranking=r["ranking"],
        ranking_indices=r["ranking_indices"], ranked_by=r["ranked_by"], best=r["best"],
        steps=r["steps"], center_lr=r.get("center_lr"), center_lr_source=r["center_lr_source"],
        measured_centers=measured, batched=r["batched"], batched_reason=r["batched_reason"],
        seeds=r["seeds"], edges=r["edges"], verdict=r["verdict"], run=_run(out))


def job_result(kind: str, out: dict[str, Any]) -> dict[str, Any]:
    """The stored (JSON) result of a job of ``kind``."""
    typed = range_test_result(out) if kind == "range_test" else trials_result(out)
    return typed.model_dump(mode="json")
