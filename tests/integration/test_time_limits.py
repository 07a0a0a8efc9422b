"""Celery's soft time limit, for real: a worker started with a 2-second limit, a job that needs
longer. The job must end ``failed`` with the time-limit problem, and the worker must go on to run
the next job. (tests/integration/test_worker_paths.py checks the task's handlers in-process; this
checks that Celery actually fires the limit into the running job.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.integration.conftest import wait_status
from tests.jobs_support import WorkerProcess, long_range_test, new_namespace, tiny_range_test

pytestmark = pytest.mark.integration

SOFT_S, HARD_S = 2, 30


def test_the_soft_time_limit_fires_in_a_running_job_and_fails_it_clearly() -> None:
    ns = new_namespace()
    worker = WorkerProcess(ns, concurrency=1, env={"OPTIM_JOB_SOFT_TIME_LIMIT_S": str(SOFT_S),
                                                   "OPTIM_JOB_HARD_TIME_LIMIT_S": str(HARD_S)})
    try:
        worker.wait_ready(timeout=120)
        with TestClient(create_app(Settings(**ns.settings_kwargs()))) as client:
            job_id = client.post("/v1/jobs/lr-range-test", json=long_range_test(seed=31)).json()["id"]
            done = wait_status(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=60)
            assert done["status"] == "failed", done
            problem = done["problem"]
            assert problem["type"].endswith("/time-limit") and problem["limit_s"] == SOFT_S
            # stopped by the limit, mid-run: well short of the 5000 steps it asked for
            assert done["progress"] is None or done["progress"]["step"] < 5000

            nxt = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=32)).json()["id"]
            after = wait_status(client, nxt, {"succeeded", "failed"}, timeout=60)
            # The child that took the limit runs the next job: the limit cannot have landed in a
            # first import (pool children warm up before their first job), so nothing is broken.
            assert after["status"] == "succeeded", (after.get("problem"), worker.tail(6000))
    finally:
        worker.stop()
        ns.cleanup()
