"""The OpenAPI document as the contract says: every error answer is an
``application/problem+json`` ``Problem`` (FastAPI's own 422 schema replaced), every operation has
a ``default`` problem response, and the schemas the declarations refer to (problem, SSE event
data, batch items) are in ``components``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.api.responses import problem_content, problem_response

_REF = "#/components/schemas/{model}"
_METHODS = ("get", "put", "post", "delete", "patch")


def _add(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    doc = model.model_json_schema(ref_template=_REF)
    for name, sub in doc.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault(model.__name__, doc)


def install(app: FastAPI, extra_models: list[type[BaseModel]]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes, tags=app.openapi_tags)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in extra_models:
            _add(schemas, model)
        for item in doc.get("paths", {}).values():
            for method in _METHODS:
                op = item.get(method)
                if op is None:
                    continue
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = problem_content()
                responses.setdefault("default", problem_response("default"))
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
