"""RFC 9457 problem details for every 4xx/5xx answer.

Each problem has ``type``, ``title``, ``status``, ``detail`` and, for validation failures, an
``errors`` list whose items name the ``field`` (dotted path), the ``message``, the rejected
``value`` where it is safe to echo, and the ``allowed`` range where pydantic knows it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://optim-advisor.dev/problems/"

log = logging.getLogger("app.problems")

# FastAPI raises HTTPException(400) with this detail for a body it cannot decode.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"

_PROBLEM_CONTENT = {"content": {PROBLEM_JSON: {}}}
#: Answers every route may give, for the OpenAPI document (the routes add their own).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM_CONTENT, "description": "Malformed request body (problem+json)"},
    413: {**_PROBLEM_CONTENT, "description": "Request body too large (problem+json)"},
    500: {**_PROBLEM_CONTENT, "description": "Internal error (problem+json)"},
}

# pydantic constraint names -> a readable relation, used for the "allowed" text.
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ if type_ == "about:blank" or "://" in type_ else PROBLEM_BASE + type_
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status,
                               "detail": self.detail}
        if instance:
            doc["instance"] = instance
        doc.update(self.extensions)
        return doc


def problem_response(problem: ProblemError, request: Request | None = None) -> JSONResponse:
    instance = str(request.url.path) if request is not None else None
    return JSONResponse(problem.to_dict(instance), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=problem.headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def _allowed(err: dict[str, Any]) -> str | None:
    ctx = err.get("ctx") or {}
    bounds = [f"{_BOUNDS[k]} {ctx[k]}" for k in ("ge", "gt", "le", "lt") if k in ctx]
    if bounds:
        return " and ".join(bounds)
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    for key in ("min_length", "max_length"):
        if key in ctx:
            return f"{key.replace('_', ' ')} {ctx[key]}"
    if err.get("type") == "extra_forbidden":
        return "no such field"
    if err.get("type") == "missing":
        return "required"
    return None


def _safe_value(value: Any) -> Any:
    if isinstance(value, (int, float, bool, str)) or value is None:
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    return None


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[dict[str, Any]]:
    """Turn pydantic errors into the ``errors`` member of a problem document."""
    out: list[dict[str, Any]] = []
    for err in errors:
        item: dict[str, Any] = {"field": _field_path(err.get("loc", ())),
                                "message": err.get("msg", "invalid")}
        allowed = _allowed(err)
        if allowed:
            item["allowed"] = allowed
        if err.get("type") != "missing":
            v = _safe_value(err.get("input"))
            if v is not None:
                item["value"] = v
        out.append(item)
    return out


def validation_problem(errors: list[dict[str, Any]], detail: str | None = None) -> ProblemError:
    items = validation_errors(errors)
    if detail is None:
        first = items[0] if items else {"field": "?", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        if first.get("allowed"):
            detail += f" (allowed: {first['allowed']})"
        if len(items) > 1:
            detail += f"; and {len(items) - 1} more"
    return ProblemError(422, "Request validation failed", detail, type_="validation-error",
                        errors=items)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the app serves at this request's path (for a 405's ``Allow``)."""
    from app.core.paths import match  # app.core.paths reads the OpenAPI document: only when needed

    found = match(request.app, request.url.path)
    return sorted(found.methods) if found else []


def install(app: FastAPI) -> None:
    """Register handlers so that every error leaves the app as problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(list(exc.errors())), request)

    # No handler for a bare pydantic ValidationError: client input is validated by FastAPI
    # (RequestValidationError, above) or by routes that catch it and answer per item. One that
    # escapes a route is a server-side bug and must answer 500, not "Request validation failed".

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body it cannot decode (not UTF-8, or a broken stream): say
            # what is wrong with it in our own terms.
            return problem_response(ProblemError(
                400, "Malformed request body",
                "The body could not be read as JSON: send UTF-8 encoded JSON with "
                "Content-Type: application/json.", type_="malformed-body"), request)
        titles = {404: "Not found", 405: "Method not allowed", 406: "Not acceptable",
                  413: "Content too large", 415: "Unsupported media type"}
        limit = getattr(exc, "limit_bytes", None)  # app.core.middleware.BodyTooLarge
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched; a path
            # served by several routes (GET and DELETE /v1/jobs/{id}) allows all of theirs.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = ProblemError(exc.status_code, titles.get(exc.status_code, "HTTP error"),
                               str(exc.detail), headers=headers,
                               **({"limit_bytes": limit} if limit is not None else {}))
        if exc.status_code == 413:
            problem.type = PROBLEM_BASE + "content-too-large"
        return problem_response(problem, request)

    # A last resort: app.core.middleware.RequestContextMiddleware answers unhandled errors itself,
    # with the request id. This handler runs in Starlette's ServerErrorMiddleware, outside it,
    # and only sees what escapes that middleware's own code; without it those would get a
    # plain-text 500 instead of problem+json.
    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(internal_error(getattr(request.state, "request_id", None)),
                                request)


def internal_error(request_id: str | None = None) -> ProblemError:
    """The 500 problem; it names the request id so that a client can quote it to find the
    logged traceback."""
    extensions = {"request_id": request_id} if request_id else {}
    return ProblemError(500, "Internal server error",
                        "The server failed to handle this request; it has been logged.",
                        type_="internal-error", **extensions)
