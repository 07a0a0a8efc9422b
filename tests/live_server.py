"""A real service for the face tests (browser and CLI): uvicorn serving app.main on a free port
and one real Celery worker, both against real Redis in a per-session namespace.

Registered as a pytest plugin in tests/conftest.py so tests/ui and tests/cli share one service.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.jobs_support import ROOT, Namespace, WorkerProcess, free_port, new_namespace, wait_until


@dataclass
class LiveService:
    url: str
    ns: Namespace
    log_path: str


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_service() -> Iterator[LiveService]:
    ns = new_namespace()
    try:
        redis.Redis.from_url(ns.redis_url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not answering at {ns.redis_url}: {exc}. Run scripts/test.")
    worker = WorkerProcess(ns, concurrency=2, queues="cpu", name="faces")
    port = free_port()
    log_path = ROOT / ".run" / f"api-faces-{ns.uid}.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
         str(port), "--no-access-log"], cwd=ROOT, env=ns.env(), stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        worker.wait_ready(timeout=120)

        def up() -> bool:
            if api.poll() is not None:
                raise AssertionError(f"uvicorn exited: {log_path.read_text()[-3000:]}")
            return _answers(url + "/healthz")

        wait_until(up, 60, 0.2, "the API to answer /healthz")
        yield LiveService(url, ns, str(log_path))
    finally:
        api.terminate()
        try:
            api.wait(20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait(10)
        log.close()
        worker.stop()
        ns.cleanup()
