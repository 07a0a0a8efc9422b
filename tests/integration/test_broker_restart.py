"""A restart of the broker Redis: the worker reconnects and keeps consuming, queued work and job
records survive (AOF, as in docker-compose.yml), and the API answers 503 while Redis is down.

This test owns a private redis-server (its own port and data directory), so restarting it never
disturbs the shared Redis the other tests use."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.integration.conftest import wait_status
from tests.jobs_support import Namespace, PrivateRedis, WorkerProcess, tiny_range_test

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_worker_keeps_consuming_after_a_broker_restart(private_redis: PrivateRedis) -> None:
    ns = Namespace(private_redis.url, "restart")
    worker = WorkerProcess(ns, concurrency=1, queues="cpu")
    try:
        worker.wait_ready(timeout=120)
        with TestClient(create_app(Settings(**ns.settings_kwargs()))) as client:
            before = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=901))
            assert before.status_code == 202, before.text
            assert wait_status(client, before.json()["id"], {"succeeded", "failed"},
                               )["status"] == "succeeded"

            private_redis.stop()
            down = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=902))
            assert down.status_code == 503, down.text
            assert down.headers["content-type"].startswith("application/problem+json")
            assert int(down.headers["Retry-After"]) > 0

            private_redis.start()
            # The job record written before the restart is still there (AOF).
            assert client.get(f"/v1/jobs/{before.json()['id']}").json()["status"] == "succeeded"
            after = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=903))
            assert after.status_code == 202, after.text
            done = wait_status(client, after.json()["id"], {"succeeded", "failed"}, timeout=90)
            assert done["status"] == "succeeded", done.get("problem")
        assert worker.proc.poll() is None, worker.tail()
    finally:
        worker.stop()
