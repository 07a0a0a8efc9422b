"""The one table from exceptions to RFC 9457 problem documents, and the safe rendering of them.

As httpx's ``_exceptions.py`` does for transport errors, every exception the service expects is
listed once, most specific first, with the HTTP status and problem type it answers with. The
worker uses it for the problem stored with a failed job; the API uses it for the errors a route
can translate (``app.core.problems.problem_for``) and for its 503 handlers. Plain dicts and no
app import (dependencies point app -> workers -> optim_core).

Problem documents echo what the client sent; :func:`safe_value` makes such a value always
renderable as strict JSON (no NaN/Infinity, no lone surrogates) and bounded in size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis.exceptions as redis_errors
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from optim_core.errors import (
    Cancelled,
    ResourceLimitError,
    SpecError,
    TrainingError,
    UnknownComponentError,
)

#: The one home of the problem-type base URL: ``type`` is this + a slug (``validation-error``).
PROBLEM_BASE = "https://optim-advisor.dev/problems/"
#: Echoed strings longer than this are cut (a 60 KB id must not make a 60 KB answer).
MAX_ECHO_CHARS = 200


@dataclass(frozen=True)
class ProblemKind:
    status: int
    type: str
    title: str


#: Exception -> (status, problem type, title). Order matters: the first isinstance match wins.
TABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ProblemKind], ...] = (
    (UnknownComponentError, ProblemKind(422, "unknown-component",
                                        "The spec names a component that is not installed")),
    (ResourceLimitError, ProblemKind(422, "resource-limit", "Spec exceeds a configured limit")),
    (SpecError, ProblemKind(422, "invalid-spec", "The spec was rejected")),
    (TrainingError, ProblemKind(422, "training-error", "Training could not proceed")),
    (Cancelled, ProblemKind(409, "cancelled", "The job was cancelled")),
    ((SoftTimeLimitExceeded, TimeLimitExceeded),
     ProblemKind(504, "time-limit", "Job exceeded its time limit")),
    # A dependency that does not answer (or refuses writes, see app.core.unavailable) clears
    # without a change to the request: 503 + Retry-After.
    ((redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError,
      ConnectionError, TimeoutError),
     ProblemKind(503, "service-unavailable", "Service unavailable")),
)
INTERNAL = ProblemKind(500, "job-error", "The job failed in the worker")

#: The exception types of the table that mean "a dependency is unavailable" (the API's 503s).
UNAVAILABLE: tuple[type[BaseException], ...] = next(
    t for t, kind in TABLE if kind.status == 503)  # type: ignore[assignment]


def kind_of(exc: BaseException) -> ProblemKind:
    for types, kind in TABLE:
        if isinstance(exc, types):
            return kind
    return INTERNAL


def type_url(slug: str) -> str:
    return slug if slug == "about:blank" or "://" in slug else PROBLEM_BASE + slug


def safe_value(value: Any) -> Any:
    """A JSON scalar that always renders: strings cut to ``MAX_ECHO_CHARS`` with lone surrogates
    replaced, non-finite floats as their name (``"inf"``), containers and objects left out."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value if not isinstance(value, int) or abs(value) < 10**30 else str(value)[:40]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return safe_text(value)
    return None


def safe_text(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    cut = text if len(text) <= limit else text[:limit] + "…"
    return cut.encode("utf-8", "replace").decode("utf-8")


def safe_document(doc: Any) -> Any:
    """The whole document made renderable (for the last-resort path of the API's renderer)."""
    if isinstance(doc, dict):
        return {safe_text(str(k), 100): safe_document(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [safe_document(v) for v in doc]
    if isinstance(doc, str):
        return safe_text(doc, 4000)
    return safe_value(doc)


def body_field(field: str | None) -> str:
    """The one field-path style: where in the request, then the dotted path
    (``body.experiment.model.hidden``, ``query.limit``). Core errors name paths inside the job's
    request body."""
    if not field:
        return "body"
    return field if field.split(".", 1)[0].split("[", 1)[0] in ("body", "query", "header", "path") \
        else f"body.{field}"


def problem(status: int, type_: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type_url(type_), "title": title, "status": status,
                           "detail": detail}
    doc.update({k: v for k, v in extensions.items() if v is not None})
    return doc


def spec_error_item(exc: SpecError) -> dict[str, Any]:
    item: dict[str, Any] = {"field": body_field(exc.field), "message": safe_text(str(exc), 1000)}
    if exc.allowed:
        item["allowed"] = exc.allowed
    value = safe_value(exc.value)
    if value is not None:
        item["value"] = value
    return item


def from_exception(exc: BaseException, detail: str | None = None, **extensions: Any
                   ) -> dict[str, Any]:
    """The problem document of ``exc``, as the table says (a SpecError names its field)."""
    kind = kind_of(exc)
    if detail is not None:
        pass
    elif kind is INTERNAL:
        detail = safe_text(f"{type(exc).__name__}: {exc}", 2000)
    else:
        detail = safe_text(str(exc) or kind.title, 2000)
    if isinstance(exc, SpecError):
        extensions.setdefault("errors", [spec_error_item(exc)])
    return problem(kind.status, kind.type, kind.title, detail, **extensions)
