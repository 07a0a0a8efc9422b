"""The route class of every API router: what the contract promises before a route runs.

* **Strict JSON.** Python's JSON parser accepts ``NaN``, ``Infinity`` and ``1e400`` (read as
  ``inf``) and strings holding lone surrogates (``"\\ud800"``), none of which is JSON a client can
  be answered with. Such a body is refused at parse time, as a 422 naming each field
  (``body.experiment.config.end_lr``), before any model sees it.
* **Strict types.** The body is also validated from its JSON in pydantic's strict mode, so that
  ``"priority": false`` or ``"end_lr": true`` is refused rather than coerced to a number
  (JSON has types; a boolean is not a number).
* **JSON says so.** A body sent without ``Content-Type: application/json`` (or another ``+json``
  type) is a 422 naming ``header.content-type``, not a complaint about the body's shape: FastAPI
  (``strict_content_type``) does not read such a body as JSON.
* **No unknown query parameters.** ``?lable=x`` is a typo, not a filter: a 422 naming
  ``query.lable`` and the parameters the route takes.
* **Unreadable bodies say why.** A body that is not JSON is the 400 the contract declares,
  saying why (a syntax error's line and column, bytes that are not text, nesting too deep to
  parse), never a 422 whose field is a character offset (``body[19]``). An integer too long for
  Python to convert (5,000 digits) is, like ``1e400``, a 422 naming its field.

The parsed body is left on the request (Starlette caches ``Request.json()``), so it is parsed once.

**The flat path.** A route whose dependencies are all leaves taking only the ``Request`` (the
advice routes: the caller and the cache), whose endpoint is async and returns a ``Response``, and
whose body is one model, is called directly with the strictly validated model: no ``json.loads``,
no second (lax) validation of the parsed dict, and no ``solve_dependencies``, which together cost
more than a cached advice answer's own work (``bench/advice_cpu.py``). It is taken only for a
body the strict validation accepts and that cannot hold what the strict-JSON walk refuses (see
``_MAY_NEED_WALK``); every other body, and every route that does not qualify, takes FastAPI's
path, so every error is the one that path gives; so does every request while dependency
overrides are set or FastAPI's telemetry traces it. ``tests/service/test_flat_route.py`` checks
that both paths answer the same.
"""

from __future__ import annotations

import email.message
import functools
import inspect
import json
import math
import re
import sys
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from app.core.problems import json_invalid, malformed_body

try:  # FastAPI >= 0.16x builds a route included in a router through an "effective context"
    from fastapi.routing import _effective_route_context_var as _EFFECTIVE
except ImportError:  # pragma: no cover - older FastAPI builds the included route itself
    _EFFECTIVE = None
try:  # FastAPI's OpenTelemetry spans (dependencies, serialisation) come from its own path
    from fastapi.telemetry import get_telemetry_data
except ImportError:  # pragma: no cover - a FastAPI without telemetry
    def get_telemetry_data() -> None:
        return None

MAX_REPORTED = 20  # a body with a million NaNs gets a bounded answer

# What only the walk of the parsed body can locate: a lone surrogate (through a ``\\u`` escape or
# a raw 0xED byte), a NaN or Infinity token, and a number that overflows to inf (an exponent of
# three digits, or 309 digits in a row). A body without any of these holds no such value, so it
# skips the walk (and may take the flat path); a body with one (a string that merely contains
# "NaN", say) is walked, and the walk reports only what is really there.
_MAY_NEED_WALK = re.compile(rb"\\u|\xed|NaN|Infinity|[eE][+-]?\d{3}|\d{309}")


# Cached (bounded): clients send a handful of distinct values, and parsing one with the email
# package costs more than the rest of the route's checks.
@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
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
    """The body parsed, and whether it may hold what strict JSON refuses (``_MAY_NEED_WALK``).
    Only such a body is walked by :func:`strict_json_errors`, which locates each bad value; a
    clean body, nearly every one, skips the walk."""
    return json.loads(body), _MAY_NEED_WALK.search(body) is not None


@dataclass(frozen=True, slots=True)
class _LongInt:
    """An integer literal with more digits than Python converts to an int (its digit limit,
    ``sys.get_int_max_str_digits``): kept in its place so that the walk can name its field."""

    digits: int


def _int_or_long(text: str) -> int | _LongInt:
    try:
        return int(text)
    except ValueError:
        return _LongInt(len(text.lstrip("-")))


def unreadable(exc: ValueError | RecursionError, body: bytes) -> Exception:
    """What to answer for a body ``json.loads`` failed on: a 422 naming each integer too long
    to convert (``{"total_steps": 1000…0}``, 5,000 digits), else the 400 saying why the body
    is not JSON (:func:`app.core.problems.malformed_body`)."""
    if type(exc) is ValueError:  # not a JSONDecodeError nor a UnicodeDecodeError
        try:
            errors = strict_json_errors(json.loads(body, parse_int=_int_or_long))
        except (ValueError, RecursionError) as again:
            # read past the long integer, the body fails for another reason: that one is the
            # answer (a syntax error after it, at its line and column)
            return malformed_body(again)
        if errors:
            return RequestValidationError(errors)
    return malformed_body(exc)


def strict_json_errors(value: Any) -> list[dict[str, Any]]:
    """pydantic-style errors for every non-finite number, integer too long to convert (parsed
    by :func:`unreadable` as a ``_LongInt``) and lone surrogate in ``value`` (iterative: a
    deeply nested body cannot exhaust the stack here)."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [(("body",), value)]
    while stack and len(errors) < MAX_REPORTED:
        loc, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            errors.append({"loc": loc, "type": "finite_number", "input": v,
                           "msg": "not a finite number (NaN, Infinity and numbers beyond "
                                  "±1.8e308 are not JSON numbers)",
                           "ctx": {"allowed": "a finite number"}})
        elif isinstance(v, _LongInt):
            limit = sys.get_int_max_str_digits()
            errors.append({"loc": loc, "type": "int_digits", "input": None,
                           "msg": f"an integer of {v.digits} digits, more than the {limit} "
                                  "digits a number may have",
                           "ctx": {"allowed": f"an integer of at most {limit} digits (and "
                                              "within the field's own range)"}})
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


class FlatCall:
    """A direct call of a qualifying route's endpoint with its body model (the flat path of the
    module docstring): each dependency is called with the request, in order."""

    def __init__(self, endpoint: Callable[..., Coroutine[Any, Any, Response]], body_name: str,
                 leaves: list[tuple[str | None, Callable[..., Any], str]],
                 overrides: Any) -> None:
        self._endpoint = endpoint
        self._body_name = body_name
        self._leaves = leaves
        self._overrides = overrides

    @property
    def stands_aside(self) -> bool:
        """Dependency overrides can be set after the route is built (tests): while any is, the
        flat path steps aside and FastAPI applies them. So it does while FastAPI's telemetry
        traces the request, whose spans of dependencies and serialisation come from its path."""
        return (bool(getattr(self._overrides, "dependency_overrides", None))
                or get_telemetry_data() is not None)

    async def __call__(self, request: Request, model: Any) -> Response:
        values: dict[str, Any] = {self._body_name: model}
        for name, dep, param in self._leaves:
            value = await dep(**{param: request})
            if name is not None:  # None: a route-level dependency (include_router(dependencies=))
                values[name] = value
        return await self._endpoint(**values)


def _takes_no_parameters(d: Dependant) -> bool:
    """No path, query, header or cookie parameter, and none of FastAPI's special ones (the
    websocket, the connection, the response, background tasks, security scopes)."""
    return not (d.path_params or d.query_params or d.header_params or d.cookie_params
                or d.websocket_param_name or d.http_connection_param_name
                or d.response_param_name or d.background_tasks_param_name
                or d.security_scopes_param_name)


def _leaf(d: Dependant) -> str | None:
    """The name of the ``Request`` parameter of a dependency that takes nothing else (and is a
    plain coroutine function, without sub-dependencies or security scopes), or None."""
    if (d.call is None or not inspect.iscoroutinefunction(d.call) or d.dependencies
            or d.body_params or d.own_oauth_scopes or not _takes_no_parameters(d)):
        return None
    return d.request_param_name


def effective(route: APIRoute) -> Any:
    """What FastAPI builds ``route``'s handler from: for a route included in a router, the
    inclusion's context (its prefix, its dependencies and the app's overrides provider are only
    there), read as ``APIRoute.get_route_handler`` reads it; else the route itself."""
    context = _EFFECTIVE.get() if _EFFECTIVE is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return route


def flat_call(route: Any) -> FlatCall | None:
    """The flat path of ``route`` (an APIRoute or its effective context), or None where the
    route does not qualify."""
    d, body = route.dependant, route.body_field
    endpoint = d.call
    if (body is None or len(d.body_params) != 1 or d.request_param_name
            or not _takes_no_parameters(d) or not inspect.iscoroutinefunction(endpoint)):
        return None
    try:
        returns = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):  # an annotation that does not resolve: FastAPI's path
        return None
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        return None  # FastAPI serialises the return value through the response model
    leaves: list[tuple[str | None, Callable[..., Any], str]] = []
    for sub in d.dependencies:
        param = _leaf(sub)
        if param is None or any(sub.call is call for _, call, _ in leaves):
            return None  # FastAPI calls a shared dependency once per request (its cache)
        assert sub.call is not None
        leaves.append((sub.name, sub.call, param))
    return FlatCall(endpoint, d.body_params[0].name, leaves, route.dependency_overrides_provider)


def takes_json(route: Any) -> bool:
    """Whether ``route`` (an APIRoute or its effective context) reads its body as JSON."""
    return route.body_field is not None and not isinstance(route.body_field.field_info,
                                                           params.Form)


class ContractRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route = effective(self)
        known = query_names(route.dependant)
        json_body = takes_json(route)
        strict = TypeAdapter(route.body_field.field_info.annotation) if json_body else None
        flat = flat_call(route)

        async def checked(request: Request) -> Response:
            unknown = ([k for k in request.query_params if k not in known]
                       if request.scope.get("query_string") else None)
            if unknown:
                allowed = ", ".join(sorted(known)) or "none"
                raise RequestValidationError([
                    {"loc": ("query", k), "type": "extra_forbidden", "input": None,
                     "msg": "unknown query parameter",
                     "ctx": {"allowed": f"one of: {allowed}"}}
                    for k in unknown[:MAX_REPORTED]])
            if json_body:
                body = await request.body()
                content_type = request.headers.get("content-type")
                if body and not (content_type and _is_json(content_type)):
                    raise RequestValidationError([
                        {"loc": ("header", "content-type"), "type": "content_type",
                         "input": None, "msg": "the body must be JSON, sent with "
                         "Content-Type: application/json" + (f" (got {content_type[:64]!r})"
                                                             if content_type else ""),
                         "ctx": {"allowed": "application/json or another +json type"}}])
                if (flat is not None and body and _MAY_NEED_WALK.search(body) is None
                        and not flat.stands_aside):
                    try:
                        model = strict.validate_json(body, strict=True)  # type: ignore[union-attr]
                    except ValidationError:
                        pass  # the full path below gives this body's errors
                    else:
                        return await flat(request, model)
                if body:
                    try:
                        parsed, suspect = parse_json(body)
                    except (ValueError, RecursionError) as exc:
                        raise unreadable(exc, body) from None
                    errors = strict_json_errors(parsed) if suspect else []
                    if errors:
                        raise RequestValidationError(errors)
                    request._json = parsed  # type: ignore[attr-defined]
                    try:
                        strict.validate_json(body, strict=True)  # type: ignore[union-attr]
                    except ValidationError as exc:
                        found = exc.errors()
                        # Python's parser read it, pydantic's did not: nested deeper than
                        # pydantic's limit (a 400 like any body that cannot be read).
                        bad = json_invalid(found, None)
                        if bad is not None:
                            raise bad from None
                        raise RequestValidationError(
                            [{**e, "loc": ("body", *e["loc"])} for e in found]) from None
            return await handler(request)

        return checked
