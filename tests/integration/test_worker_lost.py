"""A running job whose worker disappeared (its machine or main process died: no drain, no
heartbeat) is queued again when it is next read, under a new generation, and published at once:
another worker runs it instead of the job showing "running" until the broker's visibility timeout
(over an hour) restores its message. A job that keeps killing whole workers fails after
``job_max_deliveries`` as ``worker-lost``. The old message and a run wrongly taken for lost are
refused by the generation.

The first test is end to end: two real workers, one SIGKILLed (main process and pool child)
mid-job. The others drive the job store directly, the "worker" being a hostname with or without a
heartbeat, exactly as a worker's first step records it."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.integration.conftest import parse_sse, wait_status
from tests.jobs_support import (
    Namespace,
    WorkerProcess,
    long_range_test,
    tiny_range_test,
    wait_until,
)
from workers.jobstore import JobKeys, JobStore, write_heartbeat

pytestmark = pytest.mark.integration


def _store(ns: Namespace) -> tuple[redis.Redis, JobStore]:
    client = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    return client, JobStore(client, ns.jobs_prefix, result_ttl_s=600)


def _start_on(ns: Namespace, job_id: str, worker: str, *, beating: bool,
              generation: int = 0) -> None:
    client, store = _store(ns)
    try:
        if beating:
            write_heartbeat(client, JobKeys(ns.jobs_prefix), worker, {"queues": ["cpu"]}, 30)
        begin = store.begin(job_id, max_deliveries=3, worker=worker, pid=1,
                            generation=generation)
        assert begin.action == "run", begin
    finally:
        client.close()


def _medium_range_test(seed: int) -> dict[str, Any]:
    """Long enough to be killed mid-run, short enough to run again in seconds."""
    body = long_range_test(seed=seed)
    body["config"]["num_steps"] = 1200
    return body


def test_a_job_whose_worker_is_killed_runs_again_on_another_worker(lone_ns: Namespace) -> None:
    workers = [WorkerProcess(lone_ns, concurrency=1, name=name) for name in ("w1", "w2")]
    try:
        for w in workers:
            w.wait_ready(timeout=120)
        with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
            job_id = client.post("/v1/jobs/lr-range-test",
                                 json=_medium_range_test(seed=901)).json()["id"]

            def running_with_progress() -> dict[str, Any] | None:
                job = client.get(f"/v1/jobs/{job_id}").json()
                progress = job.get("progress") or {}
                return job if job["status"] == "running" and progress.get("step", 0) > 20 \
                    else None

            first = wait_until(running_with_progress, 60, 0.1, "the job to be mid-run")
            victim = next(w for w in workers if w.hostname == first["worker"])
            survivor = next(w for w in workers if w is not victim)
            os.killpg(victim.proc.pid, signal.SIGKILL)  # the main process and its pool child
            victim.proc.wait(10)

            # Polling is what notices the lost worker (its heartbeat expires after 6 s here).
            done = wait_status(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=90)
            assert done["status"] == "succeeded", (done.get("problem"), survivor.tail())
            assert done["worker"] == survivor.hostname
            assert done["generation"] == 1 and done["deliveries"] == 2
            result = done["result"]
            assert result["steps_run"] == 1200 and len(result["curve"]["lrs"]) == 1200

            assert {"status": "queued", "reason": "worker-lost"} in _status_events(client, job_id)
    finally:
        for w in workers:
            w.stop()


def _status_events(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as r:
        events = parse_sse("".join(r.iter_text()))
    return [json.loads(e["data"]) for e in events if e.get("event") == "status"]


def test_a_lost_job_is_queued_again_under_a_new_generation(lone_ns: Namespace) -> None:
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test",
                             json=tiny_range_test(seed=776)).json()["id"]
        _start_on(lone_ns, job_id, "ghost@gone", beating=False)

        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "queued" and job["generation"] == 1
        assert job["deliveries"] == 1 and job["worker"] is None

    client_r, store = _store(lone_ns)
    try:
        # The broker restores the original message after its visibility timeout: skipped.
        stale = store.begin(job_id, max_deliveries=3, worker="late@host", pid=2, generation=0)
        assert (stale.action, stale.detail) == ("skip", "stale")
        # The message published for generation 1 runs it.
        fresh = store.begin(job_id, max_deliveries=3, worker="other@host", pid=3, generation=1)
        assert (fresh.action, fresh.detail) == ("run", "2")
    finally:
        client_r.close()


def test_a_run_taken_for_lost_stops_and_cannot_overwrite_its_successor(
        lone_ns: Namespace) -> None:
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test",
                             json=tiny_range_test(seed=775)).json()["id"]
        _start_on(lone_ns, job_id, "slow@host", beating=False)  # alive, but its beats lapsed
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        _start_on(lone_ns, job_id, "new@host", beating=True, generation=1)

    client_r, store = _store(lone_ns)
    try:
        assert store.stop_reason(job_id, "slow@host", generation=0) == "superseded"
        assert store.stop_reason(job_id, "new@host", generation=1) is None
        old = store.transition(job_id, "succeeded", allowed_from=["running"],
                               fields={"result": {"from": "old"}}, generation=0)
        assert old == ("refused", "superseded")
        new = store.transition(job_id, "succeeded", allowed_from=["running"],
                               fields={"result": {"from": "new"}}, generation=1)
        assert new == ("ok", "running")
        assert store.get(job_id)["result"] == {"from": "new"}
    finally:
        client_r.close()


def test_a_job_that_keeps_losing_its_worker_fails_and_frees_its_request(
        lone_ns: Namespace) -> None:
    body = tiny_range_test(seed=777)
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test", json=body).json()["id"]
        for generation in range(3):  # job_max_deliveries is 3
            _start_on(lone_ns, job_id, f"ghost{generation}@gone", beating=False,
                      generation=generation)
            job = client.get(f"/v1/jobs/{job_id}").json()

        assert job["status"] == "failed"
        assert job["problem"]["type"].endswith("/worker-lost")
        assert job["problem"]["worker"] == "ghost2@gone"
        assert job["problem"]["max_deliveries"] == 3

        again = client.post("/v1/jobs/lr-range-test", json=body)
        assert again.status_code == 202 and again.json()["id"] != job_id


def test_a_job_whose_worker_is_beating_stays_running(lone_ns: Namespace) -> None:
    body = tiny_range_test(seed=778)
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test", json=body).json()["id"]
        _start_on(lone_ns, job_id, "alive@here", beating=True)

        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        joined = client.post("/v1/jobs/lr-range-test", json=body).json()
        assert joined["id"] == job_id and joined["deduplicated"] is True


def test_not_ready_without_a_live_worker(lone_ns: Namespace) -> None:
    # Redis answers, but no worker beats in this namespace: /readyz says which part is missing.
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["redis"] == "ok" and r.json()["workers"] == 0
        client_r = redis.Redis.from_url(lone_ns.redis_url, decode_responses=True)
        try:
            write_heartbeat(client_r, JobKeys(lone_ns.jobs_prefix), "beating@host",
                            {"hostname": "beating@host", "queues": ["cpu"]}, 30)
        finally:
            client_r.close()
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["workers"] == [{"hostname": "beating@host", "queues": ["cpu"]}]
