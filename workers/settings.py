"""Settings shared by workers and the API's producer side (pydantic-settings, prefix ``OPTIM_``).

The API's :class:`app.core.config.Settings` extends this class, so both processes read one definition
of every job setting (time limits, key prefixes, TTLs) and cannot drift apart.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """What a worker needs to run jobs, and what the API needs to publish and read them."""

    model_config = SettingsConfigDict(env_prefix="OPTIM_", env_file=None, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to redis_url. An amqp:// URL "
        "(RabbitMQ) redelivers a dead worker's job at once, with no visibility timeout; Redis "
        "stays the job store and cache either way")
    broker_key_prefix: str = Field(default="", description="kombu global_keyprefix for the broker")
    jobs_key_prefix: str = Field(default="optim:", description="prefix of job-store keys")
    job_soft_time_limit_s: int = Field(default=3300, ge=1)
    job_hard_time_limit_s: int = Field(default=3600, ge=2)
    broker_visibility_timeout_s: int | None = Field(
        default=None, description="defaults to the hard time limit + 10 minutes")
    job_max_deliveries: int = Field(default=3, ge=1)
    job_result_ttl_s: int = Field(default=7 * 24 * 3600, ge=1,
                                  description="how long finished jobs and cached results live")
    job_active_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    job_cancel_poll_s: float = Field(default=0.5, gt=0)
    worker_heartbeat_ttl_s: int = Field(default=30, ge=2)
    reaper_interval_s: float = Field(
        default=15.0, gt=0, description="the API's sweep for jobs of dead worker incarnations: "
        "such a job is queued again within heartbeat TTL + this (45 s by default)")
    worker_soft_shutdown_timeout_s: float = Field(default=60.0, ge=0)
    worker_drain_ttl_s: int = Field(
        default=600, ge=10, description="lifetime of a shutting-down worker's draining flag "
                                        "(cleared when a worker with that name starts)")
    job_final_write_attempts: int = Field(
        default=8, ge=1, description="tries of a job's final write (backoff 0.5 s doubling to "
                                     "10 s, about a minute in all) before giving up on it")
    redis_socket_timeout_s: float = Field(default=5.0, gt=0)
    worker_torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads per pool child; default: the "
                                        "cores this worker may use // its concurrency")
    max_params: int = Field(default=50_000_000, ge=1,
                            description="checked again on the built model (registered plug-ins)")

    @model_validator(mode="after")
    def _limits_in_order(self) -> WorkerSettings:
        if self.job_soft_time_limit_s >= self.job_hard_time_limit_s:
            raise ValueError("job_soft_time_limit_s must be below job_hard_time_limit_s")
        if self.visibility_timeout_s <= self.job_hard_time_limit_s:
            raise ValueError("broker_visibility_timeout_s must exceed job_hard_time_limit_s")
        return self

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_is_amqp(self) -> bool:
        return self.effective_broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")

    @property
    def visibility_timeout_s(self) -> int:
        return self.broker_visibility_timeout_s or self.job_hard_time_limit_s + 600
