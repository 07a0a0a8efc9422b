"""Problem documents (RFC 9457 shape) for jobs that fail in a worker. Plain dicts, no app import."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://optim-advisor.dev/problems/"


def problem(status: int, type_: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": PROBLEM_BASE + type_, "title": title, "status": status,
                           "detail": detail}
    doc.update({k: v for k, v in extensions.items() if v is not None})
    return doc


def from_exception(exc: BaseException) -> dict[str, Any]:
    """Translate an exception raised by the core (or anything else) into a problem document."""
    from optim_core.errors import (
        ResourceLimitError,
        SpecError,
        TrainingError,
        UnknownComponentError,
    )

    if isinstance(exc, SpecError):
        kind = ("unknown-component" if isinstance(exc, UnknownComponentError)
                else "resource-limit" if isinstance(exc, ResourceLimitError) else "invalid-spec")
        err: dict[str, Any] = {"field": exc.field or "?", "message": str(exc)}
        if exc.allowed:
            err["allowed"] = exc.allowed
        if isinstance(exc.value, (int, float, str, bool)):
            err["value"] = exc.value
        return problem(422, kind, "The job's spec was rejected by the worker", str(exc),
                       errors=[err])
    if isinstance(exc, TrainingError):
        return problem(422, "training-error", "Training could not proceed", str(exc))
    return problem(500, "job-error", "The job failed in the worker",
                   f"{type(exc).__name__}: {exc}"[:2000])
