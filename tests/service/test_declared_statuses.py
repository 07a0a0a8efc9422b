"""Every status the service's own machinery answers with is declared on the operations it can
happen on, as a problem document, not only covered by ``default``: 413 (the body cap, any method,
``GET /healthz`` too), 405 (a method the path does not take, with ``Allow``), 400 (where a route
reads a JSON body) and 422 (a ContractRoute refuses unknown query parameters, so
``GET /healthz?x=1`` too). Each operation is probed, and what it answered must be declared."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.problems import PROBLEM_JSON
from app.main import create_app

LIMIT = 2048
PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[TestClient]:
    prefix = f"declared-{uuid.uuid4().hex[:8]}:"
    settings = Settings(redis_url=redis_url, cache_redis_url=redis_url, jobs_key_prefix=prefix,
                        broker_key_prefix=prefix + "broker:", max_request_bytes=LIMIT)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


def _url(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "0" * 32, template)  # a job id's shape; rule ids take any


def test_every_operation_declares_405_and_413_as_problems(doc: dict[str, Any]) -> None:
    for path, method, op in _operations(doc):
        for status in ("405", "413"):
            assert op["responses"].get(status, {}).get("content") == PROBLEM, (method, path)
        assert "Allow" in op["responses"]["405"]["headers"], (method, path)


def test_each_answer_of_the_machinery_is_declared_on_its_operation(
        client: TestClient, doc: dict[str, Any]) -> None:
    for path, method, op in _operations(doc):
        url = _url(path)
        probes = {
            "a body over the cap": client.request(method.upper(), url, content=b"x" * (LIMIT + 1),
                                                  headers={"Content-Type": "application/json"}),
            "an unknown query parameter": client.request(method.upper(), url + "?x=1"),
        }
        if "requestBody" in op:
            probes["broken JSON"] = client.request(method.upper(), url, content=b'{"a": 1,}',
                                                   headers={"Content-Type": "application/json"})
        for what, r in probes.items():
            if r.status_code >= 400:
                assert str(r.status_code) in op["responses"], (what, method, path, r.text)
                assert r.headers["content-type"] == PROBLEM_JSON, (what, method, path)
        assert probes["a body over the cap"].status_code == 413, (method, path)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/rules"])
def test_get_with_an_unknown_query_parameter_is_a_declared_422(
        client: TestClient, doc: dict[str, Any], path: str) -> None:
    r = client.get(path, params={"x": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.x"
    assert doc["paths"][path]["get"]["responses"]["422"]["content"] == PROBLEM


def test_a_method_the_path_does_not_take_is_a_405_problem_with_allow(
        client: TestClient, doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        unused = next(m for m in ("put", "patch", "delete", "post") if m not in item)
        r = client.request(unused.upper(), _url(path))
        assert r.status_code == 405 and r.headers["content-type"] == PROBLEM_JSON, path
        assert {m.upper() for m in item} <= set(r.headers["allow"].split(", ")), path
