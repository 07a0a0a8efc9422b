"""The route class of every API router: what the contract promises before a route runs.

* **Strict JSON.** Python's JSON parser accepts ``NaN``, ``Infinity`` and ``1e400`` (read as
  ``inf``) and strings holding lone surrogates (``"\\ud800"``), none of which is JSON a client can
  be answered with. Such a body is refused at parse time, as a 422 naming each field
  (``body.experiment.config.end_lr``), before any model sees it.
* **Strict types.** The body is also validated from its JSON in pydantic's strict mode, so that
  ``"priority": false`` or ``"end_lr": true`` is refused rather than coerced to a number
  (JSON has types; a boolean is not a number).
* **No unknown query parameters.** ``?lable=x`` is a typo, not a filter: a 422 naming
  ``query.lable`` and the parameters the route takes.

The parsed body is left on the request (Starlette caches ``Request.json()``), so it is parsed once.
"""

from __future__ import annotations

import email.message
import functools
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

MAX_REPORTED = 20  # a body with a million NaNs gets a bounded answer


# Cached (bounded): clients send a handful of distinct values, and parsing one with the email
# package costs more than the rest of the route's checks.
@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    sub = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (sub == "json"
                                                                or sub.endswith("+json"))


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(body: bytes) -> tuple[Any, bool]:
    """The body parsed, and whether it may hold what strict JSON refuses: a non-finite number
    (seen by the parser itself) or a lone surrogate (possible only through a ``\\u`` escape or
    a raw surrogate byte sequence, which starts with 0xED). Only such a body is walked by
    :func:`strict_json_errors`, which locates each bad value; a clean body, nearly every one,
    skips the walk."""
    suspect = b"\\u" in body or b"\xed" in body

    def constant(name: str) -> float:  # NaN, Infinity, -Infinity
        nonlocal suspect
        suspect = True
        return float(name)

    def number(text: str) -> float:  # 1e400 parses as inf
        nonlocal suspect
        value = float(text)
        if not math.isfinite(value):
            suspect = True
        return value

    return json.loads(body, parse_constant=constant, parse_float=number), suspect


def strict_json_errors(value: Any) -> list[dict[str, Any]]:
    """pydantic-style errors for every non-finite number and lone surrogate in ``value``
    (iterative: a deeply nested body cannot exhaust the stack here)."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [(("body",), value)]
    while stack and len(errors) < MAX_REPORTED:
        loc, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            errors.append({"loc": loc, "type": "finite_number", "input": v,
                           "msg": "not a finite number (NaN, Infinity and numbers beyond "
                                  "±1.8e308 are not JSON numbers)",
                           "ctx": {"allowed": "a finite number"}})
        elif isinstance(v, str) and _has_lone_surrogate(v):
            errors.append({"loc": loc, "type": "string_unicode", "input": None,
                           "msg": "not valid Unicode (a lone surrogate escape such as \\ud800)"})
        elif isinstance(v, dict):
            for k, item in reversed(v.items()):
                if _has_lone_surrogate(k):
                    errors.append({"loc": loc, "type": "string_unicode", "input": None,
                                   "msg": "a key is not valid Unicode (a lone surrogate)"})
                    continue
                stack.append(((*loc, k), item))
        elif isinstance(v, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(v))))
    return errors


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route takes, its dependencies' included."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        names.update(p.alias for p in d.query_params)
        stack.extend(d.dependencies)
    return frozenset(names)


class ContractRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = query_names(self.dependant)
        takes_body = self.body_field is not None
        strict = TypeAdapter(self.body_field.field_info.annotation) if takes_body else None

        async def checked(request: Request) -> Response:
            unknown = [k for k in request.query_params if k not in known]
            if unknown:
                allowed = ", ".join(sorted(known)) or "none"
                raise RequestValidationError([
                    {"loc": ("query", k), "type": "extra_forbidden", "input": None,
                     "msg": "unknown query parameter",
                     "ctx": {"allowed": f"one of: {allowed}"}}
                    for k in unknown[:MAX_REPORTED]])
            if takes_body and _is_json(request.headers.get("content-type")):
                body = await request.body()
                if body:
                    try:
                        parsed, suspect = parse_json(body)
                    except (ValueError, RecursionError):
                        parsed = None  # FastAPI parses it again and answers (422 / 400)
                    else:
                        errors = strict_json_errors(parsed) if suspect else []
                        if errors:
                            raise RequestValidationError(errors)
                        request._json = parsed  # type: ignore[attr-defined]
                        try:
                            strict.validate_json(body, strict=True)  # type: ignore[union-attr]
                        except ValidationError as exc:
                            raise RequestValidationError(
                                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                            ) from None
            return await handler(request)

        return checked
