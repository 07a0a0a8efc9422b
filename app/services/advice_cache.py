"""The advice cache in Redis: key = content hash of the normalised request + rule/core versions.

A cache is an optimisation, so every Redis call is bounded by ``advice_cache_timeout_s`` and any
error opens a short circuit (``advice_cache_retry_after_s``) during which the cache is skipped —
the API keeps answering at full speed with Redis down instead of paying a timeout per request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from optim_core import __version__
from optim_core.advice.models import AdviceRequest
from optim_core.advice.rules import RULES_VERSION
from optim_core.canonical import content_hash

log = logging.getLogger("app.advice_cache")
PREFIX = "advice:v1:"
VERSIONS = {"rules": RULES_VERSION, "optim_core": __version__}


def cache_key(req: AdviceRequest) -> str:
    # model_dump fills defaults, so two requests that mean the same thing share one key.
    return PREFIX + content_hash(req.model_dump(mode="json"), versions=VERSIONS)


class AdviceCache:
    def __init__(self, client: aioredis.Redis, *, ttl_s: int, timeout_s: float,
                 retry_after_s: float) -> None:
        self._client = client
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._retry_after = retry_after_s
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _trip(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_after
        log.warning("advice cache unavailable (%s); skipping it for %.1fs", exc,
                    self._retry_after)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys or not self.available:
            return [None] * len(keys)
        try:
            return list(await asyncio.wait_for(self._client.mget(keys), self._timeout))
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            return [None] * len(keys)

    async def set_many(self, items: dict[str, str]) -> None:
        if not items or not self.available:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, ex=self._ttl)
            await asyncio.wait_for(pipe.execute(), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
