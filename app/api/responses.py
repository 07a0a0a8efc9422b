"""The OpenAPI declarations of error answers (problem+json) and of the event stream, so that every
route declares the same shapes the same way."""

from __future__ import annotations

from typing import Any

from app.core.problems import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_WHY: dict[int, str] = {
    400: "Malformed body: not JSON; `detail` says why (a syntax error at its `line` and "
         "`column`, bytes that are not UTF-8 text, nesting too deep to parse)",
    401: "No API key, or not a valid one (`WWW-Authenticate: Bearer`)",
    403: "The API key lacks the admin role",
    404: "No such job for this tenant (or it has expired)",
    405: "This path does not take the request's method; `Allow` lists the methods it takes",
    409: "The job already succeeded or failed",
    413: "Request body over the configured limit (`limit_bytes`)",
    422: "Invalid request: `errors[]` names each field (`body.…`, `query.…`, `header.…`), "
         "the rule broken and what is allowed",
    429: "Rate limit (per API key) or the tenant's cap on queued + running jobs; "
         "`Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` say "
         "when to retry",
    503: "Redis or the broker is not answering (`Retry-After`)",
}

_HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"},
          "RateLimit-Limit": {"schema": {"type": "integer"}},
          "RateLimit-Remaining": {"schema": {"type": "integer"}},
          "RateLimit-Reset": {"schema": {"type": "integer"},
                              "description": "seconds until the bucket is full again"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    405: {"Allow": {"schema": {"type": "string"}, "description": "the methods of this path"}},
}


def problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": PROBLEM_REF}}


def problem_response(status: int | str, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description or _WHY.get(int(status), "A problem")
                           if status != "default" else description or "Any other error",
                           "content": problem_content()}
    if isinstance(status, int) and status in _HEADERS:
        out["headers"] = _HEADERS[status]
    return out


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses, each an ``application/problem+json``
    :class:`app.core.problems.Problem`."""
    return {s: problem_response(s) for s in statuses}


#: The SSE event types and the schema of each one's ``data`` (components added by app.core.openapi).
SSE_EVENTS = {"status": "StatusEventData", "progress": "ProgressEventData"}


def sse_response() -> dict[str, Any]:
    events = "; ".join(f"`event: {k}` with `data:` a JSON {v}" for k, v in SSE_EVENTS.items())
    return {
        "description": "A text/event-stream. " + events + ". Each event has an `id:` to resume "
                       "from. The last event is `status` with a terminal status (or `expired`).",
        "content": {"text/event-stream": {
            "schema": {"type": "string", "description": "Server-sent events (WHATWG HTML "
                                                        "§9.2): id, event and data lines"},
            "example": 'id: 1712345678901-0\nevent: status\ndata: {"status":"running"}\n\n'
                       'id: 1712345678950-0\nevent: progress\ndata: {"step":10,"total":100,'
                       '"lr":1e-06,"loss":2.3}\n\n'
                       'id: 1712345679999-0\nevent: status\ndata: {"status":"succeeded"}\n\n',
        }},
        "x-sse-events": {k: {"data": {"$ref": f"#/components/schemas/{v}"}}
                         for k, v in SSE_EVENTS.items()},
    }
