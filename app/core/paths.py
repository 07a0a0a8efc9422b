"""The app's public path templates with their methods, read from its OpenAPI document (which lists
every route with its router prefix), compiled the way Starlette compiles route paths. Used where
routing has not matched a route: a request refused before routing (metrics label) and a 405
(its ``Allow`` header)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@dataclass(frozen=True)
class PathTemplate:
    regex: re.Pattern[str]
    template: str
    methods: frozenset[str]


def path_templates(app: Any) -> list[PathTemplate]:
    """Built once per app (the OpenAPI document is fixed once the routes are)."""
    cached = getattr(app.state, "path_templates", None)
    if cached is None:
        openapi = getattr(app, "openapi", None)
        paths = openapi().get("paths", {}) if callable(openapi) else {}
        cached = [PathTemplate(compile_path(p)[0], p,
                               frozenset(m.upper() for m in item if m in _HTTP_METHODS))
                  for p, item in paths.items()]
        app.state.path_templates = cached
    return cached


def match(app: Any, path: str) -> PathTemplate | None:
    return next((t for t in path_templates(app) if t.regex.fullmatch(path)), None)
