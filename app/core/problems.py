"""RFC 9457 problem details for every 4xx/5xx answer, declared in the OpenAPI document.

Each problem has ``type``, ``title``, ``status``, ``detail``, ``instance``, ``request_id`` and, for
validation failures, an ``errors`` list whose items name the ``field`` (one style everywhere:
``body.experiment.model.hidden``, ``query.limit``, ``header.last-event-id``), the ``message``, the
rejected ``value`` (made safe and truncated) and the ``allowed`` range where it is known.

Which exception answers with which status and type is decided in one table,
:data:`workers.problems.TABLE` (shared with the worker's failure records); rendering can never
fail (:func:`problem_response` falls back to a sanitised copy of the document).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from optim_core.errors import SpecError
from workers.problems import (
    PROBLEM_BASE,
    kind_of,
    safe_document,
    safe_text,
    safe_value,
    spec_error_item,
    type_url,
)

__all__ = ["PROBLEM_BASE", "PROBLEM_JSON", "Problem", "ProblemError", "ProblemItem",
           "field_problem", "install", "internal_error", "malformed_body", "problem_for",
           "problem_response", "validation_problem"]

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("app.problems")

# FastAPI raises HTTPException(400) with this detail for a body it cannot decode.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"

Scalar = str | int | float | bool | None


class ProblemItem(BaseModel):
    """One thing wrong with the request."""

    field: str = Field(description="where: `body.experiment.model.hidden`, `query.limit`, "
                                   "`header.last-event-id` (list items as `[i]`)",
                       examples=["body.experiment.batch_size"])
    message: str
    allowed: str | None = Field(default=None, description="the allowed range or values")
    value: Scalar = Field(default=None, description="the rejected value (scalars only, "
                                                    "truncated to 200 characters)")


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``). Extension members (for
    example ``limit_bytes``, ``job_status``) may follow."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": PROBLEM_BASE + "validation-error", "title": "Request validation failed",
        "status": 422, "detail": "body.batch_size: Input should be greater than or equal to 1",
        "instance": "/v1/advice", "request_id": "5f0c0e0d3c7e4a8f",
        "errors": [{"field": "body.batch_size", "message": "Input should be greater than or "
                    "equal to 1", "allowed": ">= 1", "value": 0}]}]})

    type: str = Field(description=f"a URL under {PROBLEM_BASE} naming the kind of problem")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    request_id: str | None = Field(default=None, description="quote it to find the log lines")
    errors: list[ProblemItem] | None = None


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_url(type_)
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None, request_id: str | None = None
                ) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status,
                               "detail": self.detail}
        if instance:
            doc["instance"] = safe_text(instance)
        if request_id:
            doc["request_id"] = request_id
        doc.update(self.extensions)
        return doc


def render(doc: dict[str, Any]) -> bytes:
    """Strict JSON bytes of a problem document; a value that cannot be rendered (NaN, a lone
    surrogate, an object) is replaced rather than turning the answer into a 500."""
    try:
        return json.dumps(doc, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        return json.dumps(safe_document(doc), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return render(content)


def problem_response(problem: ProblemError, request: Request | None = None) -> JSONResponse:
    instance = str(request.url.path) if request is not None else None
    rid = getattr(request.state, "request_id", None) if request is not None else None
    return ProblemResponse(problem.to_dict(instance, rid), status_code=problem.status,
                           headers=problem.headers)


# pydantic constraint names -> a readable relation, used for the "allowed" text.
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
# pydantic's type errors (strict JSON mode) -> the JSON type the field takes.
_TYPES = {"int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
          "bool_type": "true or false", "string_type": "a string", "list_type": "an array",
          "tuple_type": "an array", "set_type": "an array", "dict_type": "an object",
          "model_type": "an object", "model_attributes_type": "an object",
          "dataclass_type": "an object", "none_required": "null"}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "items", 3, "experiment")`` -> ``body.items[3].experiment``. Header names are
    lower-cased (HTTP header names are case-insensitive)."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + safe_text(str(p), 100))
    path = "".join(parts)
    return path.lower() if loc and loc[0] == "header" else path


def _allowed(err: dict[str, Any]) -> str | None:
    ctx = err.get("ctx") or {}
    if "allowed" in ctx:
        return str(ctx["allowed"])
    # A cross-field check raises SpecError, which pydantic wraps as a value_error: its range is
    # the exception's own.
    error = ctx.get("error")
    if isinstance(error, SpecError) and error.allowed:
        return error.allowed
    if "expected_tags" in ctx:  # a discriminated union's unknown name / kind
        return f"{ctx.get('discriminator', 'the tag')} one of {ctx['expected_tags']}"
    if err.get("type") == "union_tag_not_found":
        return f"an object with {ctx.get('discriminator', 'its tag')} naming its variant"
    bounds = [f"{_BOUNDS[k]} {ctx[k]}" for k in ("ge", "gt", "le", "lt") if k in ctx]
    if bounds:
        return " and ".join(bounds)
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    for key in ("min_length", "max_length"):
        if key in ctx:
            return f"{key.replace('_', ' ')} {ctx[key]}"
    if "pattern" in ctx:
        return f"matches {ctx['pattern']}"
    if err.get("type") in _TYPES:
        return _TYPES[err["type"]]
    if err.get("type") == "extra_forbidden":
        return "no such field"
    if err.get("type") == "missing":
        return "required"
    return None


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[dict[str, Any]]:
    """Turn pydantic errors into the ``errors`` member of a problem document."""
    out: list[dict[str, Any]] = []
    for err in errors:
        item: dict[str, Any] = {"field": field_path(err.get("loc", ())),
                                "message": safe_text(str(err.get("msg", "invalid")), 1000)}
        allowed = _allowed(err)
        if allowed:
            item["allowed"] = safe_text(allowed, 1000)
        if err.get("type") != "missing":
            v = safe_value(err.get("input"))
            if v is not None:
                item["value"] = v
        out.append(item)
    return out


def _summary(items: list[dict[str, Any]]) -> str:
    first = items[0] if items else {"field": "?", "message": "invalid"}
    detail = f"{first['field']}: {first['message']}"
    if first.get("allowed"):
        detail += f" (allowed: {first['allowed']})"
    if len(items) > 1:
        detail += f"; and {len(items) - 1} more"
    return detail


def validation_problem(errors: list[dict[str, Any]], detail: str | None = None) -> ProblemError:
    """pydantic-style errors (``loc``, ``msg``, ``type``, ``ctx``, ``input``) -> one 422."""
    items = validation_errors(errors)
    return ProblemError(422, "Request validation failed", detail or _summary(items),
                        type_="validation-error", errors=items)


def items_problem(items: list[dict[str, Any]], *, title: str = "Request validation failed",
                  type_: str = "validation-error", status: int = 422,
                  headers: dict[str, str] | None = None) -> ProblemError:
    """A problem from ready ``errors`` items (``field``, ``message``, ``allowed``, ``value``)."""
    safe = [{k: (safe_value(v) if k == "value" else v) for k, v in it.items()} for it in items]
    return ProblemError(status, title, _summary(safe), type_=type_, headers=headers, errors=safe)


def field_problem(field: str, message: str, *, allowed: str | None = None, value: Any = None,
                  title: str = "Request validation failed", type_: str = "validation-error",
                  status: int = 422, headers: dict[str, str] | None = None) -> ProblemError:
    """The one helper for a 422 (or 429) about one named field, for checks pydantic cannot
    make (a cursor, a configured limit)."""
    item: dict[str, Any] = {"field": field, "message": message}
    if allowed is not None:
        item["allowed"] = allowed
    if value is not None:
        item["value"] = value
    return items_problem([item], title=title, type_=type_, status=status, headers=headers)


def problem_for(exc: BaseException, **extensions: Any) -> ProblemError:
    """The route-side translation of an exception, as :data:`workers.problems.TABLE` says."""
    kind = kind_of(exc)
    if isinstance(exc, SpecError):
        extensions.setdefault("errors", [spec_error_item(exc)])
    return ProblemError(kind.status, kind.title, safe_text(str(exc) or kind.title, 2000),
                        type_=kind.type, **extensions)


_SEND_JSON = "send UTF-8 encoded JSON with Content-Type: application/json"


def malformed_body(reason: BaseException | str) -> ProblemError:
    """The 400 for a body that cannot be read as JSON, saying truthfully why: a syntax error at
    its line and column, bytes that are not text, nesting too deep to parse (Python's parser
    and pydantic's each have a depth limit), or what the parser said. A number with more digits
    than Python converts is this only where its field cannot be found (FastAPI's own parsing,
    on a route that is not a ``ContractRoute``); a ``ContractRoute`` answers it with a 422 naming
    the field (:func:`app.core.routing.strict_json_errors`)."""
    extensions: dict[str, Any] = {}
    text = str(reason)
    if isinstance(reason, json.JSONDecodeError):
        detail = (f"The body is not valid JSON: {reason.msg} at line {reason.lineno}, column "
                  f"{reason.colno}.")
        extensions = {"line": reason.lineno, "column": reason.colno}
    elif isinstance(reason, UnicodeDecodeError):
        detail = (f"The body is not text: byte {reason.start} is not valid {reason.encoding} "
                  f"({reason.reason}); {_SEND_JSON}.")
    elif isinstance(reason, RecursionError) or "recursion limit" in text:
        where = f" ({text})" if isinstance(reason, str) else ""
        detail = f"The body's arrays and objects are nested too deeply to be read{where}."
    else:
        detail = f"The body could not be read as JSON: {text}; {_SEND_JSON}."
    return ProblemError(400, "Malformed request body", safe_text(detail, 500),
                        type_="malformed-body", **extensions)


def json_invalid(errors: list[dict[str, Any]], body: Any) -> ProblemError | None:
    """FastAPI's 'JSON decode error' (a 422 whose ``loc`` holds a character offset, which would
    read as a list index: ``body[19]``) as the 400 the contract declares, at its line and
    column."""
    for err in errors:
        if err.get("type") != "json_invalid":
            continue
        loc = tuple(err.get("loc", ()))
        msg = str((err.get("ctx") or {}).get("error", err.get("msg", "invalid JSON")))
        if len(loc) == 2 and isinstance(loc[1], int) and isinstance(body, str | bytes):
            doc = body if isinstance(body, str) else body.decode("utf-8", "replace")
            return malformed_body(json.JSONDecodeError(msg, doc, loc[1]))
        return malformed_body(msg)
    return None


def _allowed_methods(request: Request) -> list[str]:
    """Every method the app serves at this request's path (for a 405's ``Allow``)."""
    from app.core.paths import match  # app.core.paths reads the OpenAPI document: only when needed

    found = match(request.app, request.url.path)
    return sorted(found.methods) if found else []


_HTTP_TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                405: "Method not allowed", 406: "Not acceptable", 413: "Content too large",
                415: "Unsupported media type"}
_HTTP_TYPES = {401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 413: "content-too-large"}


def install(app: FastAPI) -> None:
    """Register handlers so that every error leaves the app as problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        unreadable = json_invalid(errors, getattr(exc, "body", None))
        return problem_response(unreadable or validation_problem(errors), request)

    # No handler for a bare pydantic ValidationError: client input is validated by FastAPI
    # (RequestValidationError, above) or by routes that catch it and answer per item. One that
    # escapes a route is a server-side bug and must answer 500, not "Request validation failed".

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body its parser failed on, the parser's error as the cause:
            # say what it was, in our own terms.
            cause = exc.__cause__
            return problem_response(malformed_body(
                cause if cause is not None else "the body could not be parsed"), request)
        limit = getattr(exc, "limit_bytes", None)  # app.core.middleware.BodyTooLarge
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched; a path
            # served by several routes (GET and DELETE /v1/jobs/{id}) allows all of theirs.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = ProblemError(exc.status_code, _HTTP_TITLES.get(exc.status_code, "HTTP error"),
                               safe_text(str(exc.detail), 500), headers=headers,
                               type_=_HTTP_TYPES.get(exc.status_code, "about:blank"),
                               **({"limit_bytes": limit} if limit is not None else {}))
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
