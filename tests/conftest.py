"""Shared fixtures. Integration fixtures (a real Celery worker) live in tests/integration/."""

from __future__ import annotations

import os

import pytest
import redis
from hypothesis import settings as hypothesis_settings

# The real service (uvicorn + a Celery worker) shared by the browser and CLI tests.
pytest_plugins = ["tests.live_server"]

# CI runs a fixed set of examples (a red build is then reproducible, never a lucky draw) and no
# per-example deadline (a busy 2-core machine is slow, not wrong). Locally, examples vary.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Tests use their own Redis databases so they never touch a developer's data in DB 0.
TEST_REDIS_URL = os.environ.get("OPTIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:  # scripts/test starts Redis; say so if it is missing
        pytest.fail(f"Redis is not answering at {TEST_REDIS_URL}: {exc}. Run scripts/test.")
    return TEST_REDIS_URL


@pytest.fixture()
def clean_redis(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
