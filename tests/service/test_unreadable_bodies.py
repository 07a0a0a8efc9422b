"""A body that cannot be read as JSON gets the answer the contract declares, saying truthfully
why: a syntax error is the 400 malformed-body at its line and column (it was a 422 naming a
character offset as a list index, ``body[19]``); nesting too deep to parse is a 400 that says
so (it was "send UTF-8 encoded JSON"); an integer too long for Python to convert is a 422 naming
its field, as ``10**400`` is (it was the same misleading 400)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app.core import problems
from app.core.config import Settings
from app.core.problems import PROBLEM_JSON
from app.main import create_app

JSON = {"Content-Type": "application/json"}
DIGITS = sys.get_int_max_str_digits()
LONG = "1" + "0" * DIGITS  # one digit more than Python converts


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def _malformed(r: object) -> dict:
    assert r.status_code == 400, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == PROBLEM_JSON  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["type"].endswith("/malformed-body") and "errors" not in body, body
    return body


@pytest.mark.parametrize(("content", "line", "column"), [
    (b'{"total_steps": 10,}', 1, 20),
    (b'{"total_steps": 10,\n\n  x}', 3, 3),
    (b'{"total_steps": 10} x', 1, 21),
    (b'{"schedule": ', 1, 14),
])
def test_a_syntax_error_is_a_400_at_its_line_and_column(client: TestClient, content: bytes,
                                                        line: int, column: int) -> None:
    body = _malformed(client.post("/v1/schedules/preview", content=content, headers=JSON))
    assert (body["line"], body["column"]) == (line, column)
    assert f"line {line}, column {column}" in body["detail"]


@pytest.mark.parametrize("depth", [300, 3000])  # past pydantic's limit; past Python's
def test_nesting_too_deep_is_a_400_that_says_so(client: TestClient, depth: int) -> None:
    content = '{"task":' + "[" * depth + "]" * depth + "}"
    body = _malformed(client.post("/v1/advice", content=content, headers=JSON))
    assert "nested too deeply" in body["detail"] and "UTF-8" not in body["detail"]


def test_bytes_that_are_not_text_are_a_400_that_says_so(client: TestClient) -> None:
    body = _malformed(client.post("/v1/advice", content=b'{"task": "\xff"}', headers=JSON))
    assert "not text" in body["detail"] and "utf-8" in body["detail"]


@pytest.mark.parametrize(("path", "content", "field"), [
    ("/v1/advice", '{"param_count": ' + LONG + "}", "body.param_count"),
    ("/v1/diagnose", '{"loss": [1, -' + LONG + ", 1, 1]}", "body.loss[1]"),
    ("/v1/advice/batch", '{"items": [{"param_count": ' + LONG + "}]}",
     "body.items[0].param_count"),
])
def test_an_integer_too_long_to_convert_is_a_422_naming_its_field(
        client: TestClient, path: str, content: str, field: str) -> None:
    r = client.post(path, content=content, headers=JSON)
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["field"] == field
    assert f"{DIGITS + 1} digits" in err["message"] and f"at most {DIGITS}" in err["allowed"]


def test_a_syntax_error_after_a_long_integer_is_the_syntax_error(client: TestClient) -> None:
    # the long integer stops Python's parser first; read past it, the body fails at the comma
    content = '{"param_count": ' + LONG + ", }"
    body = _malformed(client.post("/v1/advice", content=content, headers=JSON))
    assert (body["line"], body["column"]) == (1, len(content))
    assert "digits" not in body["detail"]


def test_the_openapi_document_declares_the_400(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "400" in doc["paths"]["/v1/schedules/preview"]["post"]["responses"]


# -- a route of FastAPI's own (not ContractRoute): its parse errors are translated the same way

class _Body(BaseModel):
    n: int


@pytest.fixture(scope="module")
def plain() -> Iterator[TestClient]:
    app = FastAPI()
    problems.install(app)

    @app.post("/plain")
    async def plain_route(body: _Body) -> dict[str, int]:
        return {"n": body.n}

    with TestClient(app) as c:
        yield c


def test_fastapis_json_decode_error_is_the_400_not_a_fake_index(plain: TestClient) -> None:
    body = _malformed(plain.post("/plain", content=b'{"n": 1,}', headers=JSON))
    assert (body["line"], body["column"]) == (1, 9)


def test_fastapis_other_parse_failures_say_what_they_were(plain: TestClient) -> None:
    deep = _malformed(plain.post("/plain", content="[" * 3000 + "]" * 3000, headers=JSON))
    assert "nested too deeply" in deep["detail"]
    long = _malformed(plain.post("/plain", content='{"n": ' + LONG + "}", headers=JSON))
    assert "digits" in long["detail"] and "UTF-8 encoded" in long["detail"]
