"""Faults, against both brokers (Redis, and RabbitMQ over amqp://): a worker SIGKILLed and
restarted under the same name, and a restart of the job-store Redis under load.

Each test owns what it restarts: a private redis-server and a private RabbitMQ node (own ports,
own data directories), never the machine's shared ones."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.jobs_support import (
    JOBS_TEST_REDIS_URL,
    Namespace,
    PrivateRabbitMQ,
    PrivateRedis,
    WorkerProcess,
    long_range_test,
    rabbitmq_server,
    start_api,
    tiny_range_test,
    wait_until,
)
from workers.jobstore import JobKeys, JobStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    if rabbitmq_server() is None:
        pytest.fail("rabbitmq-server is not installed; scripts/test installs it")
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str | None:
    """The broker URL (None: the job-store Redis is the broker)."""
    return request.getfixturevalue("rabbit").url if request.param == "amqp" else None


def _medium(seed: int) -> dict[str, Any]:
    body = long_range_test(seed=seed)
    body["config"]["num_steps"] = 1200
    return body


def test_sigkill_then_restart_under_the_same_name(broker: str | None) -> None:
    ns = Namespace(JOBS_TEST_REDIS_URL, uuid.uuid4().hex[:10], broker_url=broker)
    r = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    store = JobStore(r, ns.jobs_prefix, result_ttl_s=600)
    keys = JobKeys(ns.jobs_prefix)
    worker = WorkerProcess(ns, concurrency=1, name="same")
    try:
        worker.wait_ready(timeout=120)
        first_boot = worker.boot
        # The reaper sweeps every second here; nothing below polls the job through the API.
        settings = Settings(**ns.settings_kwargs(), reaper_interval_s=1.0, log_level="WARNING")
        with TestClient(create_app(settings)) as client:
            body = _medium(seed=4242)
            job_id = client.post("/v1/jobs/lr-range-test", json=body).json()["id"]
            wait_until(lambda: (rec := store.get(job_id)) and rec["status"] == "running"
                       and (rec.get("progress") or {}).get("step", 0) > 20, 90, 0.1,
                       "the job to be mid-run")
            os.killpg(worker.proc.pid, signal.SIGKILL)  # main process and pool child
            worker.proc.wait(10)
            killed_at = time.monotonic()
            worker.stop()
            worker = WorkerProcess(ns, concurrency=1, name="same")  # the same hostname
            worker.wait_ready(timeout=120)
            assert worker.boot != first_boot

            # Once the dead incarnation's heartbeat has expired, an identical request does not
            # join a job that incarnation still holds.
            wait_until(lambda: not r.exists(keys.worker(first_boot)), 30, 0.2,
                       "the dead incarnation's heartbeat to expire")
            again = client.post("/v1/jobs/lr-range-test", json=body).json()
            assert again["id"] == job_id
            assert again["status"] in ("queued", "running", "succeeded"), again
            assert again.get("worker") is None or store.get(job_id).get("boot") != first_boot

            done = wait_until(lambda: (rec := store.get(job_id)) and rec["status"] in (
                "succeeded", "failed") and rec, 120, 0.2, "the job to end")
            took = time.monotonic() - killed_at
            assert done["status"] == "succeeded", (done.get("problem"), worker.tail())
            assert done["worker"] == worker.hostname and done.get("boot") == worker.boot
            assert done["deliveries"] == 2
            assert done["result"]["steps_run"] == 1200
            assert took < 120, f"the job took {took:.0f} s to run again after the kill"
    finally:
        worker.stop()
        r.close()
        ns.cleanup()


class _Load:
    """Threads sending ordinary requests to a live API, recording (start, status) of each."""

    def __init__(self, base: str, job_id: str, threads: int = 6) -> None:
        self.base, self.job_id = base, job_id
        self.results: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.base, timeout=15) as c:
            n = 0
            while not self._stop.is_set():
                n += 1
                t0 = time.monotonic()
                try:
                    if i % 3 == 0:
                        status = c.get("/v1/jobs", params={"limit": 5}).status_code
                    elif i % 3 == 1:
                        status = c.get(f"/v1/jobs/{self.job_id}").status_code
                    else:
                        body = tiny_range_test(seed=10_000 * i + n)
                        status = c.post("/v1/jobs/lr-range-test", json=body).status_code
                except httpx.HTTPError:
                    status = -1
                self.results.append((t0, time.monotonic(), status))
                time.sleep(0.02)

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(20)


def test_a_redis_restart_under_load_gives_503s_only_while_it_is_down(
        broker: str | None, tmp_path: pathlib.Path) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    ns = Namespace(server.url, "fault" + uuid.uuid4().hex[:6], broker_url=broker)
    worker = WorkerProcess(ns, concurrency=1, log_path=tmp_path / "worker.log")
    api, base = start_api(ns, tmp_path / "api.log")
    try:
        worker.wait_ready(timeout=120)
        first = httpx.post(base + "/v1/jobs/lr-range-test", json=tiny_range_test(seed=1))
        assert first.status_code == 202, first.text
        job_id = first.json()["id"]
        with _Load(base, job_id) as load:
            time.sleep(2)
            down_at = time.monotonic()
            server.stop()
            time.sleep(3)
            server.start()  # same port, same data (AOF)
            up_at = time.monotonic()
            time.sleep(5)
        results = load.results
        assert len(results) > 50, len(results)
        statuses = {s for _, _, s in results}
        assert not statuses - {200, 202, 503}, sorted(statuses)  # never a 500 or a hang
        # 503s only while Redis was down: every request started once it answered again is
        # served (the clients retry on a fresh connection instead of failing on a stale one).
        late = [(t0 - up_at, s) for t0, _, s in results if t0 >= up_at + 0.2 and s == 503]
        early = [s for t0, _, s in results if t0 < down_at - 0.2 and s == 503]
        assert not late, f"503 after Redis was back: {late[:5]} (of {len(late)})"
        assert not early
        assert any(s == 503 for _, _, s in results), "the outage was not seen at all"
        # The worker reconnected too: a new job runs to the end. The load's own jobs are
        # cancelled first (queued ones end at once, and the worker skips their messages): the
        # new job need not wait behind dozens of them, which proves nothing more.
        for _ in range(20):
            queued = httpx.get(base + "/v1/jobs", params={"status": "queued", "limit": 100},
                               timeout=15).json()["items"]
            if not queued:
                break
            for job in queued:
                httpx.delete(f"{base}/v1/jobs/{job['id']}", timeout=15)
        after = httpx.post(base + "/v1/jobs/lr-range-test", json=tiny_range_test(seed=99))
        assert after.status_code == 202, after.text

        def ended() -> str | None:
            status = httpx.get(f"{base}/v1/jobs/{after.json()['id']}").json()["status"]
            return status if status in ("succeeded", "failed") else None

        assert wait_until(ended, 90, 0.3, "the job after the restart") == "succeeded"
        assert worker.proc.poll() is None, worker.tail()
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(20)
        worker.stop()
        server.stop()
