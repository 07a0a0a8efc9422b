"""The OpenAPI document as the contract says: every error answer is an
``application/problem+json`` ``Problem`` (FastAPI's own 422 schema replaced), every operation
declares the statuses the service's machinery can give it (400, 405, 413, 422) and has a
``default`` problem response, the schemas the declarations refer to (problem, SSE event data,
batch items) are in ``components``, and each route that takes a key says so (its
``security``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.api.responses import problem_content, problem_response
from app.core.routing import ContractRoute, takes_json

_REF = "#/components/schemas/{model}"
_METHODS = ("get", "put", "post", "delete", "patch")


def _add(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    doc = model.model_json_schema(ref_template=_REF)
    for name, sub in doc.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault(model.__name__, doc)


def _operations(app: FastAPI, doc: dict[str, Any]) -> Iterator[tuple[APIRoute, dict[str, Any]]]:
    """Each documented route (included routers' too, at their prefixed path) with each of its
    operations in ``doc``."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        item = doc.get("paths", {}).get(context.path_format or route.path_format, {})
        for method in route.methods:
            if method.lower() in item:
                yield route, item[method.lower()]


def _declare_security(app: FastAPI, doc: dict[str, Any], schemes: dict[str, Any],
                      secured: Callable[[Dependant], bool]) -> None:
    doc["components"].setdefault("securitySchemes", {}).update(schemes)
    requirement = [{name: []} for name in schemes]
    for route, op in _operations(app, doc):
        if secured(route.dependant):
            op["security"] = requirement


def _declare_contract_statuses(app: FastAPI, doc: dict[str, Any]) -> None:
    """The statuses that the service's own machinery answers with, whatever a route declares:
    413 on every operation (the body cap is a middleware's, for any method), 405 (the path's
    answer to a method it does not take), 400 where the route reads a JSON body, and 422 on a
    ContractRoute (it refuses unknown query parameters, so even ``GET /healthz?x=1``)."""
    for route, op in _operations(app, doc):
        statuses = [405, 413]
        if takes_json(route):
            statuses.append(400)
        if isinstance(route, ContractRoute):
            statuses.append(422)
        responses = op.setdefault("responses", {})
        for status in statuses:
            responses.setdefault(str(status), problem_response(status))


def install(app: FastAPI, extra_models: list[type[BaseModel]], *,
            security: tuple[dict[str, Any], Callable[[Dependant], bool]] | None = None) -> None:
    """``security``: the schemes, and which routes (by their dependencies) take them."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes, tags=app.openapi_tags)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in extra_models:
            _add(schemas, model)
        _declare_contract_statuses(app, doc)
        for item in doc.get("paths", {}).values():
            for method in _METHODS:
                op = item.get(method)
                if op is None:
                    continue
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = problem_content()
                responses.setdefault("default", problem_response("default"))
        if security is not None:
            _declare_security(app, doc, *security)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
