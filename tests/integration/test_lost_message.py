"""A job whose message the Redis broker lost is published again by the reaper; a job that only
waits in the queue keeps its message and its place.

The loss is made the way kombu's Redis transport loses a message: it leaves its queue's list (a
worker's BRPOP took it) and never reaches the ``unacked`` hash (the reply died with the
connection). Real Redis, the real app's reaper loop, and a real worker that then runs both jobs.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.services.broker_messages import job_of
from tests.integration.conftest import wait_status
from tests.jobs_support import Namespace, WorkerProcess, tiny_range_test, wait_until
from workers.config import queue_keys

pytestmark = pytest.mark.integration


def _messages(r: redis.Redis, ns: Namespace) -> list[tuple[str, int] | None]:
    return [job_of(json.loads(raw)) for key in queue_keys(ns.broker_prefix, "cpu")
            for raw in r.lrange(key, 0, -1)]


def test_a_lost_message_is_published_again_and_a_waiting_job_keeps_its_place(
        lone_ns: Namespace) -> None:
    settings = Settings(**{**lone_ns.settings_kwargs(), "reaper_interval_s": 0.2,
                           "job_lost_message_after_s": 1.0})
    r = redis.Redis.from_url(lone_ns.redis_url)
    worker: WorkerProcess | None = None
    try:
        with TestClient(create_app(settings)) as client:
            lost, kept = (client.post("/v1/jobs/lr-range-test",
                                      json=tiny_range_test(seed=seed, num_steps=20)).json()["id"]
                          for seed in (1601, 1602))
            assert sorted(m for m in _messages(r, lone_ns) if m) == sorted([(lost, 0), (kept, 0)])
            # Sweeps over more than job_lost_message_after_s with both messages waiting:
            # neither job is taken for lost, nothing is published twice.
            time.sleep(1.5)
            assert sorted(m for m in _messages(r, lone_ns) if m) == sorted([(lost, 0), (kept, 0)])
            assert client.app.state.jobs._absent == {}
            for key in queue_keys(lone_ns.broker_prefix, "cpu"):
                for raw in r.lrange(key, 0, -1):
                    if job_of(json.loads(raw)) == (lost, 0):
                        assert r.lrem(key, 1, raw) == 1  # what the lost BRPOP did
            removed = time.monotonic()

            def republished() -> dict | None:
                rec = client.get(f"/v1/jobs/{lost}").json()
                return rec if rec["generation"] == 1 else None

            rec = wait_until(republished, 20, 0.1, "the reaper to publish the lost job again")
            # not before it had been missing at two sweeps job_lost_message_after_s apart
            assert time.monotonic() - removed >= settings.job_lost_message_after_s
            assert rec["status"] == "queued" and rec["deliveries"] == 0
            assert sorted(m for m in _messages(r, lone_ns) if m) == sorted([(lost, 1), (kept, 0)])
            assert client.get(f"/v1/jobs/{kept}").json()["generation"] == 0

            worker = WorkerProcess(lone_ns, concurrency=1, queues="cpu", name="lost")
            worker.wait_ready(timeout=120)
            for job_id in (lost, kept):
                done = wait_status(client, job_id, {"succeeded", "failed", "cancelled"})
                assert done["status"] == "succeeded" and done["deliveries"] == 1, done
            assert client.get(f"/v1/jobs/{lost}").json()["generation"] == 1
    finally:
        if worker is not None:
            worker.stop()
        r.close()
