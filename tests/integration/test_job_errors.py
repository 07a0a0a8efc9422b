"""Refusals at submission: 404, 422 naming the field or the limit, 413 — problem+json."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from tests.jobs_support import Namespace, tiny_range_test, tiny_trials
from workers.jobstore import JobKeys

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def test_unknown_job_is_404(client: TestClient) -> None:
    for path in ("/v1/jobs/" + "0" * 32, "/v1/jobs/not-an-id", "/v1/jobs/" + "0" * 32 + "/events"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert client.delete("/v1/jobs/" + "f" * 32).status_code == 404


def test_bad_spec_is_422_naming_the_field(client: TestClient) -> None:
    body = tiny_range_test()
    body["config"]["num_steps"] = 3
    r = client.post("/v1/jobs/lr-range-test", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    err = r.json()["errors"][0]
    assert err["field"] == "body.config.num_steps" and err["allowed"] == ">= 10"

    r = client.post("/v1/jobs/lr-range-test", json={**tiny_range_test(), "device": "tpu"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.device"


@pytest.mark.parametrize(("mutate", "field", "limit"), [
    (lambda b: b["experiment"].update(batch_size=8000), "body.experiment.batch_size",
     "<= 4096"),
    (lambda b: b["experiment"]["model"].update(hidden=[8192, 8192]), "body.experiment.model",
     "<= 50000000 parameters"),
])
def test_oversized_spec_is_422_naming_the_limit(client: TestClient, mutate, field: str,
                                                limit: str) -> None:
    body = tiny_range_test()
    mutate(body)
    r = client.post("/v1/jobs/lr-range-test", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    doc = r.json()
    assert doc["type"].endswith("resource-limit")
    assert any(e["field"] == field and e["allowed"] == limit for e in doc["errors"]), doc


def test_too_many_steps_and_memory_are_refused(client: TestClient) -> None:
    body = tiny_range_test()
    body["config"]["num_steps"] = 6000
    r = client.post("/v1/jobs/lr-range-test", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0] == {"field": "body.config.num_steps", "value": 6000,
                                     "allowed": "<= 5000",
                                     "message": "6000 steps exceed the limit max_steps=5000"}
    trials = tiny_trials()
    trials["experiment"] = {"data": {"kind": "images", "height": 64, "width": 64, "channels": 3,
                                     "n_classes": 10},
                            "model": {"kind": "cnn", "channels": [256, 256]},
                            "batch_size": 4096}  # ~65 GB of activations by the estimate
    r = client.post("/v1/jobs/trials", json=trials)
    assert r.status_code == 422, r.text
    assert any(e["field"] == "body.experiment" and e["allowed"].endswith("MB")
               for e in r.json()["errors"])


def test_request_body_is_bounded(client: TestClient) -> None:
    payload = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    r = client.post("/v1/jobs/lr-range-test", content=payload,
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert r.json()["limit_bytes"] == 1_000_000


def test_chunked_oversized_body_is_413_not_400(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: only the streamed size can tell
        yield b'{"pad": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}'

    r = client.post("/v1/jobs/lr-range-test", content=chunks(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["limit_bytes"] == 1_000_000 and doc["type"].endswith("content-too-large")


def test_413_before_routing_is_labelled_with_the_route_or_a_fixed_label(
        client: TestClient) -> None:
    big = {"content-type": "application/json", "content-length": "2000000"}
    assert client.post("/v1/jobs/trials", content=b"{}", headers=big).status_code == 413
    for i in range(3):
        assert client.post(f"/no/such/{i}", content=b"{}", headers=big).status_code == 413
    text = client.get("/metrics").text
    assert 'route="/v1/jobs/trials",status="413"' in text
    assert 'route="unmatched",status="413"' in text
    assert "/no/such/" not in text  # raw paths never become labels


def test_trials_over_the_total_step_budget_are_refused(client: TestClient) -> None:
    body = tiny_trials()
    body["config"] = {"steps": 2000, "default_optimizers": ["adamw", "sgd"],
                      "lr_factors": [0.1, 0.3, 1.0, 3.0, 10.0]}
    # (10 candidates + 2 × 2 possible edge extensions) × 2000 + 2 × 100 range-test steps
    r = client.post("/v1/jobs/trials", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    err = next(e for e in r.json()["errors"] if e["allowed"].endswith("in all"))
    assert err["field"] == "body.config.steps" and err["value"] == 28_200
    assert "max_total_steps=20000" in err["message"] and "range tests" in err["message"]


def test_a_partial_job_record_is_404_not_an_error(client: TestClient, ns: Namespace,
                                                  store: redis.Redis) -> None:
    job_id = uuid.uuid4().hex
    key = JobKeys(ns.jobs_prefix).job(job_id)
    store.hset(key, mapping={"progress": '{"step": 1, "total": 2}', "updated_at": "x"})
    store.expire(key, 60)
    for method in ("GET", "DELETE"):
        r = client.request(method, f"/v1/jobs/{job_id}")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (method, r.text)
