"""A running job whose worker's machine disappeared (no drain, no heartbeat) is failed with a
``worker-lost`` problem when it is read, and an identical request then starts a new job — instead
of showing "running" until the broker's visibility timeout (over an hour) redelivers it.

No worker consumes this test's namespace: the "worker" is simulated by starting the job in the
store under a hostname, with or without a heartbeat, exactly as a worker's first step does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.jobs_support import Namespace, new_namespace, tiny_range_test
from workers.jobstore import JobKeys, JobStore, write_heartbeat

pytestmark = pytest.mark.integration


@pytest.fixture()
def lone_ns() -> Iterator[Namespace]:
    ns = new_namespace()
    yield ns
    ns.cleanup()


def _start_on(ns: Namespace, job_id: str, worker: str, *, beating: bool) -> None:
    client = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    try:
        if beating:
            write_heartbeat(client, JobKeys(ns.jobs_prefix), worker, {"queues": ["cpu"]}, 30)
        store = JobStore(client, ns.jobs_prefix, result_ttl_s=600)
        assert store.begin(job_id, max_deliveries=3, worker=worker, pid=1).action == "run"
    finally:
        client.close()


def test_a_job_whose_worker_vanished_fails_and_frees_its_request(lone_ns: Namespace) -> None:
    body = tiny_range_test(seed=777)
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test", json=body).json()["id"]
        _start_on(lone_ns, job_id, "ghost@gone", beating=False)

        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "failed"
        assert job["problem"]["type"].endswith("/worker-lost")
        assert job["problem"]["worker"] == "ghost@gone"

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


def test_the_redelivered_message_of_a_lost_job_is_skipped(lone_ns: Namespace) -> None:
    with TestClient(create_app(Settings(**lone_ns.settings_kwargs()))) as client:
        job_id = client.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=779)).json()["id"]
        _start_on(lone_ns, job_id, "ghost@gone", beating=False)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"

    client_r = redis.Redis.from_url(lone_ns.redis_url, decode_responses=True)
    try:  # what the task does when the broker finally redelivers the old message
        begin = JobStore(client_r, lone_ns.jobs_prefix, result_ttl_s=600).begin(
            job_id, max_deliveries=3, worker="other@host", pid=2)
        assert (begin.action, begin.detail) == ("skip", "failed")
    finally:
        client_r.close()
