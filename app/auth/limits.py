"""Per-key rate limits (a token bucket in Redis, shared by every API replica) and the setting of
the per-tenant cap on queued + running jobs (the job store's submit script enforces it, so two
simultaneous submissions cannot both pass). Both answer 429 with ``Retry-After`` and
``RateLimit-*`` headers.

The bucket's clock is Redis's own ``TIME`` (replicas' clocks may differ); a bucket holds at most
``burst`` tokens and refills at ``rate`` per second; each request takes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

# KEYS[1] bucket hash; ARGV: rate (tokens/s), burst. Returns {allowed, tokens left, ms until the
# next token (0 if allowed), ms until full}.
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return {allowed, tostring(tokens), wait, math.ceil((burst - tokens) / rate)}
"""

@dataclass(frozen=True)
class BucketState:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        h = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
             "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


class Limiter:
    def __init__(self, client: aioredis.Redis, prefix: str, *, rate_per_s: float, burst: int,
                 tenant_max_active: int) -> None:
        self.r = client
        self.prefix = prefix
        self.rate = rate_per_s
        self.burst = burst
        self.tenant_max_active = tenant_max_active

    async def take(self, who: str) -> BucketState:
        allowed, tokens, wait_ms, full_ms = await self.r.eval(
            _BUCKET_LUA, 1, f"{self.prefix}ratelimit:{who}", self.rate, self.burst)
        return BucketState(bool(int(allowed)), self.burst, math.floor(float(tokens)),
                           max(1, math.ceil(int(wait_ms) / 1000)) if not int(allowed) else 0,
                           math.ceil(int(full_ms) / 1000))
