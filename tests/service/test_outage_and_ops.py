"""Without Redis the API answers fast: /healthz 200; jobs and /readyz 503 with Retry-After.
Request ids go in and out. No worker or Redis needed for these."""

from __future__ import annotations

import logging
import time

import pytest
import redis.exceptions as redis_errors
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app.core.config import Settings
from app.core.unavailable import is_refusing_writes
from app.main import create_app
from tests.jobs_support import free_port, tiny_range_test

PROBLEM = "application/problem+json"


def _down_app() -> TestClient:
    closed = free_port()  # nothing listens here
    return TestClient(create_app(Settings(redis_url=f"redis://127.0.0.1:{closed}/0",
                                          redis_socket_timeout_s=1.0, retry_after_s=7)),
                      raise_server_exceptions=False)


def test_redis_outage_is_503_with_retry_after_not_a_hang() -> None:
    with _down_app() as client:
        t0 = time.monotonic()
        r = client.post("/v1/jobs/lr-range-test", json=tiny_range_test())
        assert time.monotonic() - t0 < 5
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == PROBLEM and r.headers["retry-after"] == "7"
        assert r.json()["status"] == 503 and r.json()["title"]
        for path in ("/v1/jobs/" + "a" * 32, "/v1/jobs", "/readyz"):
            r = client.get(path)
            assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, path
            assert r.headers["retry-after"] == "7"
        assert client.get("/healthz").status_code == 200


def test_request_id_is_echoed_or_generated() -> None:
    with _down_app() as client:
        r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32
        bad = client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
        assert bad.headers["x-request-id"] != "no spaces allowed"


def test_openapi_lists_the_job_routes() -> None:
    with _down_app() as client:
        paths = client.get("/openapi.json").json()["paths"]
        for p in ("/v1/jobs/lr-range-test", "/v1/jobs/trials", "/v1/jobs/lr-range-test/batch",
                  "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/healthz",
                  "/readyz", "/metrics"):
            assert p in paths, p


def test_metrics_still_export_http_metrics_while_redis_is_down() -> None:
    with _down_app() as client:
        client.get("/healthz")
        r = client.get("/metrics")
        assert r.status_code == 200, r.text
        assert "optim_redis_up 0.0" in r.text
        assert 'optim_http_requests_total{method="GET",route="/healthz",status="200"}' in r.text


def test_a_validation_error_raised_by_server_code_is_a_500_not_a_422() -> None:
    class Internal(BaseModel):
        n: int

    with _down_app() as client:
        app = client.app

        @app.get("/boom-validation")
        async def boom() -> dict[str, int]:
            return Internal.model_validate({"n": "not a number"}).model_dump()

        r = client.get("/boom-validation")
        assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
        assert r.json()["title"] == "Internal server error"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_unhandled_error_is_a_500_problem_with_the_request_id() -> None:
    # A handler of our own: the app's logging setup (JSON to stderr) bypasses pytest's caplog.
    logged = _Records()
    logging.getLogger("app.problems").addHandler(logged)
    with _down_app() as client:
        app = client.app

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("a server-side bug")

        r = client.get("/boom", headers={"X-Request-ID": "req-500"})
        assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
        assert r.headers["x-request-id"] == "req-500"
        doc = r.json()
        assert doc["status"] == 500 and doc["title"] == "Internal server error"
        assert doc["request_id"] == "req-500" and doc["instance"] == "/boom"
        assert "a server-side bug" not in r.text  # nothing of the error leaks to the client
        # generated ids too, and the traceback is logged once
        generated = client.get("/boom")
        assert len(generated.headers["x-request-id"]) == 32
        assert generated.json()["request_id"] == generated.headers["x-request-id"]
        logging.getLogger("app.problems").removeHandler(logged)
        assert len(logged.records) == 2 and all(rec.exc_info for rec in logged.records)
        metrics = client.get("/metrics").text
        assert 'optim_http_requests_total{method="GET",route="/boom",status="500"} 2.0' in metrics


@pytest.mark.parametrize(("error", "refusing"), [
    (redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
    (redis_errors.ReadOnlyError("You can't write against a read only replica."), True),
    (redis_errors.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's "
                                "currently unable to persist to disk."), True),
    (redis_errors.ResponseError("ERR Error running script (call to f_x): @user_script:3: "
                                "-OOM command not allowed when used memory > 'maxmemory'"), True),
    (redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
     False),
])
def test_redis_refusing_writes_is_recognised(error: Exception, refusing: bool) -> None:
    assert is_refusing_writes(error) is refusing
