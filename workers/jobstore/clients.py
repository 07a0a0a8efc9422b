"""Redis clients that survive a Redis restart, for both sides (one home for the policy).

After a restart every pooled connection is dead; without a retry the first request on each one
fails (48 of 50 concurrent requests answered 503 once Redis was back, and stale ones kept
appearing minutes later). So every client here:

* retries a command on ConnectionError / TimeoutError with jittered exponential backoff (the
  retry opens a fresh connection), a few times only: a Redis that stays down still fails fast;
* checks an idle connection (PING) before use after ``HEALTH_CHECK_S`` of silence, so a
  connection the server dropped is replaced instead of failing a request;
* has a socket timeout and a connect timeout, and TCP keepalive;
* (the API's async client) a bounded pool that waits a little for a free connection instead of
  opening connections without limit.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

HEALTH_CHECK_S = 10
_RETRY_ON = (RedisConnectionError, RedisTimeoutError, ConnectionResetError)


def _common(timeout_s: float) -> dict[str, Any]:
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
            "socket_keepalive": True, "health_check_interval": HEALTH_CHECK_S,
            "retry_on_error": list(_RETRY_ON)}


def sync_client(url: str, *, timeout_s: float, retries: int = 5, decode_responses: bool = True,
                backoff_cap_s: float = 2.0) -> redis.Redis:
    """Workers and scripts: more patient (a pool child may wait seconds for a Redis restart)."""
    return redis.Redis.from_url(
        url, decode_responses=decode_responses, **_common(timeout_s),
        retry=Retry(ExponentialWithJitterBackoff(cap=backoff_cap_s, base=0.1), retries))


def async_client(url: str, *, timeout_s: float, max_connections: int, retries: int = 3,
                 backoff_cap_s: float = 0.5, decode_responses: bool = True) -> aioredis.Redis:
    """The API: a few quick retries (a request that cannot be served answers 503 fast) and a
    bounded pool; waiting for a free connection is bounded by the socket timeout too."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout_s,
        decode_responses=decode_responses,
        **_common(timeout_s),
        retry=AsyncRetry(ExponentialWithJitterBackoff(cap=backoff_cap_s, base=0.02), retries))
    return aioredis.Redis(connection_pool=pool)
