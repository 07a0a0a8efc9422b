"""The one Python reader of a job's ``result`` (the dashboard has its one reader in
``app/ui/static/results.js``): the plot endpoint and the Python client read results only through
:func:`read_result`, so a change of the stored shape is reconciled here.

Written for the agreed flat, discriminated shape (``result.kind`` ``range_test`` | ``trials``;
range test: ``curve.{lrs, losses, raw_losses}``, ``validation``, ``suggestions``, ``stop_reason``,
``steps_run``; trials: ``candidates[]``, ``ranking``, ``best``), with a fallback for the shape the
workers store today (an envelope whose ``result`` holds ``lrs``/``losses``/``val_steps`` or
``trials``). Pure pydantic: no torch, no numpy.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Num = float | None


class Suggestions(BaseModel):
    steepest: Num = None
    valley: Num = None
    minimum_div10: Num = None
    lr_at_min: Num = None
    recommended: Num = None
    confidence: Num = None
    reason: str | None = None
    flags: list[str] = Field(default_factory=list)
    cycle_max_lr: Num = None
    cycle_min_lr: Num = None

    def marks(self) -> list[tuple[str, float]]:
        """Every suggestion that has a value, as (name, lr), the recommended one first."""
        names = ("recommended", "steepest", "valley", "minimum_div10", "lr_at_min")
        return [(n, v) for n in names if (v := getattr(self, n)) is not None]


class RangeTestView(BaseModel):
    kind: Literal["range_test"] = "range_test"
    lrs: list[Num]
    losses: list[Num] = Field(description="smoothed")
    raw_losses: list[Num] = Field(default_factory=list)
    val_steps: list[int] = Field(default_factory=list)
    val_losses: list[Num] = Field(default_factory=list)
    suggestions: Suggestions = Field(default_factory=Suggestions)
    stop_reason: str | None = None
    steps_run: int | None = None

    def val_lrs(self) -> list[Num]:
        """The LR at each validation step (the x of the validation curve)."""
        return [self.lrs[s] if 0 <= s < len(self.lrs) else None for s in self.val_steps]


class CandidateView(BaseModel):
    label: str
    peak_lr: Num = None
    optimizer: dict[str, Any] = Field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    train_losses: list[Num] = Field(default_factory=list)
    smoothed_train_losses: list[Num] = Field(default_factory=list)
    val_steps: list[int] = Field(default_factory=list)
    val_losses: list[Num] = Field(default_factory=list)
    final_train_loss: Num = None
    final_val_loss: Num = None
    diverged: bool = False


class TrialsView(BaseModel):
    kind: Literal["trials"] = "trials"
    candidates: list[CandidateView]
    ranking: list[str] = Field(default_factory=list, description="labels, best first")
    best: str | None = None
    ranked_by: str | None = None


ResultView = RangeTestView | TrialsView

_KIND = {"range_test": "range_test", "lr-range-test": "range_test", "trials": "trials"}


def read_result(result: dict[str, Any] | None, job_kind: str | None = None) -> ResultView | None:
    """A job's ``result`` (as ``GET /v1/jobs/{id}`` returns it) as a typed view; None when the
    job has no result. Accepts the target shape and today's envelope."""
    if not result:
        return None
    kind = _KIND.get(str(result.get("kind") or job_kind or ""))
    # Today: {"kind": ..., "result": {...the measurement...}, ...envelope}; target: flat.
    body = result["result"] if isinstance(result.get("result"), dict) else result
    if kind is None:
        kind = "trials" if ("candidates" in body or "trials" in body) else "range_test"
    return _trials(body) if kind == "trials" else _range_test(body)


def _range_test(body: dict[str, Any]) -> RangeTestView:
    curve = body.get("curve") or body
    validation = body.get("validation") or {}
    return RangeTestView(
        lrs=curve.get("lrs") or [], losses=curve.get("losses") or [],
        raw_losses=curve.get("raw_losses") or [],
        val_steps=validation.get("steps") or body.get("val_steps") or [],
        val_losses=validation.get("losses") or body.get("val_losses") or [],
        suggestions=Suggestions.model_validate(body.get("suggestions") or {}),
        stop_reason=body.get("stop_reason"), steps_run=body.get("steps_run"))


def _candidate(raw: dict[str, Any]) -> CandidateView:
    curves = raw.get("curves") or raw.get("curve") or {}
    merged = {**raw, **curves} if isinstance(curves, dict) else raw
    return CandidateView.model_validate(
        {k: v for k, v in merged.items() if k in CandidateView.model_fields})


def _trials(body: dict[str, Any]) -> TrialsView:
    raw = body.get("candidates") or body.get("trials") or []
    best = body.get("best")
    if isinstance(best, dict):  # a typed result may carry the best candidate, not its label
        best = best.get("label")
    ranking = [r.get("label") if isinstance(r, dict) else r for r in body.get("ranking") or []]
    return TrialsView(candidates=[_candidate(c) for c in raw], ranking=ranking, best=best,
                      ranked_by=body.get("ranked_by"))
