"""A Redis that is up but refuses writes — OOM at maxmemory (the broker's noeviction policy) or
READONLY (a replica after a failover) — answers 503 + Retry-After, like a dead one, not 500.
A private redis-server, so the shared one is never reconfigured."""

from __future__ import annotations

import shutil

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.jobs_support import PrivateRedis, free_port, tiny_range_test

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_oom_and_readonly_answer_503_with_retry_after(private_redis: PrivateRedis) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    settings = Settings(redis_url=private_redis.url, retry_after_s=9)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            admin.config_set("maxmemory", "1")  # below what the server already uses
            r = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=1))
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "9"
            assert r.headers["content-type"] == "application/problem+json"
            batch = client.post("/v1/jobs/lr-range-test/batch",
                                json={"items": [tiny_range_test(seed=2)]})
            assert batch.status_code == 503 and batch.json()["items"][0]["status"] == 503

            admin.config_set("maxmemory", "0")
            admin.replicaof("127.0.0.1", free_port())  # a master that never answers
            r = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=3))
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "9"
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()
