"""Warm drain: SIGTERM to a worker with a running job ends the worker within seconds, the job
goes back to ``queued`` (its delivery not counted) with its message back on the queue, and the
next worker runs it to the end. Its own namespace and workers, so the session worker is never
stopped."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.integration.conftest import wait_status
from tests.jobs_support import WorkerProcess, long_range_test, new_namespace, wait_until
from workers.config import queue_keys
from workers.jobstore import JobKeys

pytestmark = pytest.mark.integration


def test_sigterm_hands_the_running_job_back_and_the_next_worker_finishes_it() -> None:
    ns = new_namespace()
    r = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    first = WorkerProcess(ns, concurrency=1, queues="cpu")
    second: WorkerProcess | None = None
    try:
        first.wait_ready(timeout=120)
        with TestClient(create_app(Settings(**ns.settings_kwargs()))) as client:
            body = long_range_test(seed=2101)
            body["config"]["num_steps"] = 1500
            job = client.post("/v1/jobs/lr-range-test", json=body).json()
            wait_until(lambda: (client.get(f"/v1/jobs/{job['id']}").json().get("progress")
                                or {}).get("step"), 60, 0.05, "the job to report progress")

            t0 = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            first.proc.wait(timeout=20)  # warm shutdown no longer waits for the whole job
            assert time.monotonic() - t0 < 15, first.tail()

            back = client.get(f"/v1/jobs/{job['id']}").json()
            assert back["status"] == "queued", (back, first.tail())
            assert back["deliveries"] == 0  # the drained delivery is not counted
            assert 0 < back["progress"]["step"] < 1500
            # The message is back on the queue now, not after the visibility timeout.
            assert sum(r.llen(k) for k in queue_keys(ns.broker_prefix, "cpu")) == 1
            events = r.xrange(JobKeys(ns.jobs_prefix).events(job['id']))
            statuses = [json.loads(f["data"]) for _, f in events if f["event"] == "status"]
            assert statuses[-1] == {"status": "queued", "reason": "worker-shutdown"}
            # An identical submission joins the queued job.
            again = client.post("/v1/jobs/lr-range-test", json=body)
            assert again.json()["id"] == job["id"] and again.json()["deduplicated"] is True

            # Same hostname: also checks that a restarted worker clears the old draining flag.
            second = WorkerProcess(ns, concurrency=1, queues="cpu")
            second.wait_ready(timeout=120)
            done = wait_status(client, job["id"], {"succeeded", "failed", "cancelled"},
                               timeout=120)
            assert done["status"] == "succeeded", (done.get("problem"), second.tail())
            assert done["deliveries"] == 1
            assert len(done["result"]["curve"]["lrs"]) == 1500
    finally:
        first.stop()
        if second is not None:
            second.stop()
        r.close()
        ns.cleanup()
