"""Reading a job's ``result``: the typed union of ``optim_core.specs.results`` (the shape the
API declares), plus the two derived views the plots and the CLI draw. Pure pydantic: no torch,
no numpy. The dashboard's one reader is ``app/ui/static/results.js``.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from optim_core.specs.results import JobResult, LrSuggestions, RangeTestResult, TrialsResult

__all__ = ["RangeTestResult", "ResultView", "TrialsResult", "read_result", "suggestion_marks",
           "validation_lrs"]

ResultView = RangeTestResult | TrialsResult
_RESULT: TypeAdapter[Any] = TypeAdapter(JobResult)

# The marks drawn on a range-test curve, the recommended one first.
_MARKS = ("recommended", "steepest", "valley", "minimum_div10", "lr_at_min")


def read_result(result: dict[str, Any] | ResultView | None) -> ResultView | None:
    """A job's ``result`` (as ``GET /v1/jobs/{id}`` returns it) as its typed model; None when
    the job has none."""
    if not result:
        return None
    if isinstance(result, RangeTestResult | TrialsResult):
        return result
    return _RESULT.validate_python(result)


def suggestion_marks(s: LrSuggestions) -> list[tuple[str, float]]:
    """Every suggestion that has a value, as (name, lr), the recommended one first."""
    return [(n, v) for n in _MARKS if (v := getattr(s, n)) is not None]


def validation_lrs(view: RangeTestResult) -> list[float | None]:
    """The LR at each validation step (the x of the validation curve)."""
    if view.validation is None:
        return []
    lrs = view.curve.lrs
    return [lrs[s] if 0 <= s < len(lrs) else None for s in view.validation.steps]
