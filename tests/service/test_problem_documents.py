"""Every error is a problem document, also for bodies that are not JSON at all and for a batch in
which every item was refused. (Found by fuzzing the API with schemathesis against its own OpenAPI
document; no Redis or worker is needed for these paths.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.problems import PROBLEM_JSON
from app.main import create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/advice", "/v1/advice/batch", "/v1/diagnose",
                                  "/v1/schedules/preview", "/v1/jobs/lr-range-test",
                                  "/v1/jobs/trials", "/v1/jobs/lr-range-test/batch"])
def test_a_body_that_is_not_utf8_json_is_a_400_problem(client: TestClient, path: str) -> None:
    r = client.post(path, content=b"\xff\xfe%0\x80", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["type"].endswith("/malformed-body") and body["instance"] == path
    # ... and the OpenAPI document says so.
    doc = client.get("/openapi.json").json()
    assert "400" in doc["paths"][path]["post"]["responses"]


def test_invalid_json_says_where_it_breaks(client: TestClient) -> None:
    r = client.post("/v1/advice", content=b'{"task": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["type"].endswith("/malformed-body") and (body["line"], body["column"]) == (1, 10)


def test_a_batch_with_every_item_refused_is_a_422_problem_with_the_items(
        client: TestClient) -> None:
    r = client.post("/v1/jobs/lr-range-test/batch", json={"items": [{}, {"experiment": 1}]})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["type"].endswith("/batch-refused") and body["succeeded"] == 0
    assert body["failed"] == 2
    assert [item["status"] for item in body["items"]] == [422, 422]
    assert body["items"][0]["problem"]["errors"][0]["field"].startswith("body.items[0]")


def test_label_keys_are_identifiers(client: TestClient) -> None:
    body = {"experiment": {"data": {"kind": "digits"}, "model": {"kind": "mlp", "hidden": [8]},
                           "batch_size": 8},
            "labels": {"\t": "x"}}
    r = client.post("/v1/jobs/lr-range-test", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    (err,) = r.json()["errors"]
    assert err["field"].startswith("body.labels") and "pattern" in err["message"]


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/v1/jobs/" + "a" * 32, "DELETE, GET"),  # two routes serve this path
    ("PUT", "/v1/advice", "POST"),
    ("POST", "/healthz", "GET"),
])
def test_405_is_a_problem_that_allows_every_method_of_the_path(
        client: TestClient, method: str, path: str, allow: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM_JSON
    assert r.headers["allow"] == allow
