"""One real Celery worker per test session, against real Redis (DB 12, a per-session prefix).

The worker subprocess and the in-process app agree through the same OPTIM_* values."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.jobs_support import Namespace, PrivateRedis, WorkerProcess, new_namespace, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def ns() -> Iterator[Namespace]:
    namespace = new_namespace()
    try:
        redis.Redis.from_url(namespace.redis_url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not answering at {namespace.redis_url}: {exc}. Run scripts/test.")
    yield namespace
    namespace.cleanup()


@pytest.fixture()
def lone_ns() -> Iterator[Namespace]:
    """A namespace of the test's own, which no worker consumes until the test starts one."""
    namespace = new_namespace()
    yield namespace
    namespace.cleanup()


@pytest.fixture(scope="session")
def worker(ns: Namespace) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(ns, concurrency=2, queues="cpu")
    try:
        proc.wait_ready(timeout=120)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def settings(ns: Namespace) -> Settings:
    return Settings(**ns.settings_kwargs())


@pytest.fixture(scope="session")
def client(settings: Settings, worker: WorkerProcess) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture()
def store(ns: Namespace) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    yield r
    r.close()


def parse_sse(text: str) -> list[dict[str, str]]:
    """A text/event-stream body as a list of events, each ``{"event": ..., "data": ..., ...}``."""
    return [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            for block in text.strip().split("\n\n") if block.strip()]


def wait_status(client: TestClient, job_id: str, statuses: set[str], timeout: float = 60
                ) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["status"] in statuses else None

    return wait_until(check, timeout, 0.1, f"job {job_id} to reach {sorted(statuses)}")


@pytest.fixture()
def private_redis(tmp_path: pathlib.Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
