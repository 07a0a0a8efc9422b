"""Service settings, read from the environment (prefix ``OPTIM_``) by pydantic-settings.

Settings are created once in ``app.main.create_app`` and passed down through ``app.state``;
nothing imports a global settings object.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.settings import WorkerSettings


class Settings(WorkerSettings):
    """The API's settings: the job settings it shares with the workers (time limits, key
    prefixes, TTLs, ``redis_url``), plus its own."""

    model_config = SettingsConfigDict(env_prefix="OPTIM_", env_file=None, extra="ignore")

    # --- Redis -------------------------------------------------------------------------------
    # The broker/job-store Redis and the cache Redis may be the same instance in development;
    # in production they differ (broker: noeviction + AOF; cache: allkeys-lru, no persistence).
    cache_redis_url: str | None = Field(
        default=None, description="Cache Redis; defaults to redis_url when unset.")
    # The API fails fast (503) rather than waiting on a slow Redis; workers wait longer.
    redis_socket_timeout_s: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(
        default=50, ge=2, description="per Redis, per API process; SSE streams do not use it "
                                      "(they share one reader per job on a pool of their own)")

    # --- Advice ------------------------------------------------------------------------------
    advice_cache_ttl_s: int = Field(default=24 * 3600, ge=1)
    advice_batch_max_items: int = Field(default=100, ge=1, le=100,
                                        description="at most 100: the schema's maximum")
    # The cache is an optimisation: a slow or dead cache Redis must not slow advice down.
    advice_cache_timeout_s: float = Field(default=0.2, gt=0, le=10)
    # Writes and probe reads run behind the responses: under load they may take longer than a
    # read a request waits on, without slowing anyone (bounded by 0.2 s, wrk's misses opened the
    # circuit now and then).
    advice_cache_background_timeout_s: float = Field(default=2.0, gt=0, le=60)
    advice_cache_retry_after_s: float = Field(
        default=5.0, ge=0, le=3600, description="skip the cache this long after a cache error")
    # Writes go out behind the responses, gathered for up to this long (or until
    # advice_cache_write_batch wait): one pipeline costs the API about as much CPU as a fresh
    # advice, so a miss that paid one each was twice a miss. A write lost in the window (a
    # crash) costs one recomputation elsewhere, nothing more.
    advice_cache_write_window_s: float = Field(default=0.02, ge=0, le=60)
    advice_cache_write_batch: int = Field(default=256, ge=1, le=10_000)
    # A Redis read costs about half a fresh advice: below this hit rate of recent reads, misses
    # skip it but one in advice_cache_read_probe_every (app.services.advice_cache.ReadPolicy).
    # 0 reads on every miss.
    advice_cache_read_floor: float = Field(default=0.5, ge=0, le=1)
    advice_cache_read_probe_every: int = Field(default=16, ge=1, le=1000)

    # --- Jobs (the shared ones are in workers.settings.WorkerSettings) ---------------------
    job_publish_timeout_s: float = Field(default=5.0, gt=0)
    job_lost_message_after_s: float = Field(
        default=60.0, gt=0, description="Redis broker: a queued job whose message the broker "
        "holds nowhere (no queue list, not unacked) at two reaper sweeps this far apart is "
        "published again under a new generation")
    jobs_batch_max_items: int = Field(default=50, ge=1, le=50,
                                      description="at most 50: the schema's maximum")
    jobs_list_max_limit: int = Field(default=100, ge=1, le=100,
                                     description="at most 100: the schema's maximum")
    tenant_max_stored_jobs: int = Field(
        default=10_000, ge=1, description="per tenant: jobs kept in Redis (any state); beyond "
                                          "it, the oldest finished ones are deleted on submit")
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    sse_max_streams: int = Field(
        default=200, ge=1, description="open event streams per API process; over it the "
        "events route answers 503 (nothing else is refused)")
    sse_max_streams_per_tenant: int | None = Field(
        default=50, ge=1, description="open event streams per tenant when callers have keys "
        "(429 over it; None = no per-tenant cap). Open mode has one tenant: only "
        "sse_max_streams applies")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503 answers")
    # Submission limits: specs beyond these are refused with 422 before anything is queued.
    max_steps: int = Field(default=5000, ge=1)
    max_total_steps: int = Field(
        default=20_000, ge=1, description="trials: candidates × steps (+ the range tests that "
                                          "measure the centre LR) per job")
    max_batch_size: int = Field(default=4096, ge=1)
    max_samples: int = Field(
        default=20_000_000, ge=1, description="work per job, in samples through the model: "
        "steps × accumulation_steps × batch_size plus validation, over every phase (about "
        "5000 steps at batch 4096)")
    max_memory_mb: int = Field(default=8192, ge=1)
    max_request_bytes: int = Field(default=1_000_000, ge=1024)

    # --- Callers: API keys, tenants, limits (app.auth) ------------------------------------
    host: str = Field(default="127.0.0.1", description="the address uvicorn binds (OPTIM_HOST, "
                                                        "as scripts/up passes it)")
    auth: Literal["auto", "keys", "open"] = Field(
        default="auto", description="auto: open (no keys) when host is a loopback address, "
                                    "else keys; keys: Authorization: Bearer <key> on /v1 and "
                                    "/metrics; open: no keys anywhere (explicit choice)")
    rate_limit_per_s: float = Field(default=10.0, gt=0, le=1e6,
                                    description="per API key: tokens refilled per second")
    rate_limit_burst: int = Field(default=100, ge=1, le=1_000_000,
                                  description="per API key: bucket size")
    tenant_max_active_jobs: int = Field(default=200, ge=1,
                                        description="per tenant: queued + running jobs (429 "
                                                    "over it, checked atomically at submit)")
    limits_when_open: bool = Field(
        default=False, description="apply the rate limit and the tenant cap when running open "
                                   "too (one bucket per client address)")

    # --- HTTP --------------------------------------------------------------------------------
    request_id_header: str = "X-Request-ID"
    log_format: str = Field(default="json", description="json or text")
    log_level: str = "INFO"

    @property
    def host_is_loopback(self) -> bool:
        return is_loopback(self.host)

    def open_on(self, local_host: str | None) -> bool:
        """Whether a request that arrived on the local address ``local_host`` needs no key. In
        ``auto`` mode a connection on a non-loopback address needs one whatever ``host`` says:
        it proves that the server binds more than loopback. (A server puts the socket's IP
        address there; a name, such as the test client's ``testserver``, says nothing.)"""
        if self.effective_auth != "open":
            return False
        return self.auth == "open" or not _is_ip(local_host) or is_loopback(str(local_host))

    @property
    def effective_auth(self) -> Literal["keys", "open"]:
        if self.auth == "auto":
            return "open" if self.host_is_loopback else "keys"
        return self.auth

    @property
    def effective_cache_redis_url(self) -> str:
        return self.cache_redis_url or self.redis_url


# Cached: the API asks for every request, with the address of the socket it came in on (a
# handful per process), and parsing an address costs more than the rest of the check.
@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def _is_ip(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True
