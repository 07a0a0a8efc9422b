"""Application factory: settings in, a FastAPI app out. ``uvicorn app.main:app`` serves it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

import optim_core
from app.api import deps
from app.api.routes import advice, health, jobs, plots, rules, ui
from app.auth.keys import AsyncKeyStore
from app.auth.limits import Limiter
from app.core import openapi, problems, unavailable
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.metrics import HttpMetrics
from app.core.middleware import RequestContextMiddleware
from app.schemas.jobs import ProgressEventData, RangeTestJobRequest, StatusEventData
from app.server import bound_host
from app.services.advice_cache import AdviceCache, ReadPolicy
from app.services.events import EventHub
from app.services.jobs import JobService
from app.services.publish import JobPublisher
from optim_core.advice.models import AdviceRequest
from workers.jobstore import AsyncJobStore, JobKeys
from workers.jobstore.clients import async_client

log = logging.getLogger("app.main")

SHUTDOWN_STEP_S = 10.0


async def _bounded(what: str, step: Awaitable[object]) -> None:
    """One step of shutdown, given ``SHUTDOWN_STEP_S``: a step that does not end (a Redis call
    that never returns, a cancel lost in a timeout) must not hold up the others, nor the
    process's exit, and one that fails must not keep the others from closing. Not
    ``asyncio.wait_for``: on its timeout it waits for the step to take the cancel."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_STEP_S)
    if not done:
        task.cancel()
        log.warning("shutdown: %s did not finish within %.0f s; left behind", what,
                    SHUTDOWN_STEP_S)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("shutdown: %s failed: %r", what, task.exception())


async def _reap_forever(jobs: JobService, interval_s: float) -> None:
    """Jobs of dead worker incarnations go back to the queue even if nobody polls them, jobs
    whose publish failed with the store down are published once both answer, and (Redis broker)
    queued jobs whose message the broker lost are published again."""
    task = asyncio.current_task()
    while True:
        await asyncio.sleep(interval_s)
        try:
            await jobs.publish_unpublished()
            handled = await jobs.reap_lost_workers()
            if handled:
                log.info("reaper: jobs of lost workers handled", extra={"jobs": handled})
            await jobs.recover_lost_messages()
        except Exception as exc:  # Redis down: the next sweep tries again
            # A cancel (shutdown) that lands as a Redis call's own timeout expires can come out
            # of asyncio.timeout as TimeoutError (Python 3.11): caught here, it would be lost and
            # shutdown would wait on this loop for ever. The task still counts the cancel.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc
            log.warning("reaper sweep failed: %s", type(exc).__name__)


TAGS = [
    {"name": "advice", "description": "Optimizer settings from a model spec, each value "
                                      "explained by the rules it came from"},
    {"name": "jobs", "description": "LR range tests and short trials as background jobs"},
    {"name": "rules", "description": "The rules the advice cites"},
    {"name": "operations", "description": "Health, readiness and metrics"},
]


async def check_auth(settings: Settings, keys: AsyncKeyStore) -> None:
    """Say how callers are checked; refuse to serve a non-loopback address with no keys to
    check (unless ``OPTIM_AUTH=open`` says so on purpose)."""
    if settings.effective_auth == "open":
        if settings.host_is_loopback:
            log.warning("auth: OPEN (no API keys needed): serving %s, a loopback address. Any "
                        "other address requires keys (OPTIM_AUTH=keys).", settings.host)
        else:
            log.warning("auth: OPEN on %s, a non-loopback address, because OPTIM_AUTH=open: "
                        "anyone who can reach it can read and cancel every job", settings.host)
        return
    try:
        n = await keys.count()
    except (OSError, ConnectionError, TimeoutError) as exc:  # Redis down: keys are still required
        log.warning("auth: keys required; could not count them (%r)", exc)
        return
    if n == 0 and not settings.host_is_loopback:
        raise RuntimeError(
            f"refusing to serve {settings.host} without API keys: create one with "
            "`python -m app.keys create --tenant NAME --role admin` (optim-advisor keys "
            "create ...), or set OPTIM_AUTH=open to run open on purpose")
    log.info("auth: API keys required (%d keys)", n)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Clients are created here, not at import: tests and workers build apps with other URLs.
        # Retries, health checks, timeouts and a bounded pool: workers.jobstore.clients.
        app.state.redis = async_client(settings.redis_url,
                                       timeout_s=settings.redis_socket_timeout_s,
                                       max_connections=settings.redis_max_connections)
        app.state.cache_redis = async_client(settings.effective_cache_redis_url,
                                             timeout_s=settings.redis_socket_timeout_s,
                                             max_connections=settings.redis_max_connections,
                                             decode_responses=False)  # bodies stay bytes
        # The advice cache holds its circuit-breaker state: one per app, over the cache Redis.
        app.state.advice_cache = AdviceCache(
            app.state.cache_redis, ttl_s=settings.advice_cache_ttl_s,
            timeout_s=settings.advice_cache_timeout_s,
            background_timeout_s=settings.advice_cache_background_timeout_s,
            retry_after_s=settings.advice_cache_retry_after_s,
            write_window_s=settings.advice_cache_write_window_s,
            write_batch=settings.advice_cache_write_batch,
            read_policy=ReadPolicy(floor=settings.advice_cache_read_floor,
                                   probe_every=settings.advice_cache_read_probe_every))
        # Jobs: the job store, a Celery producer (no task bodies) and, with a Redis broker, a
        # client of it, read by the reaper for lost messages (the job store's when they share
        # one Redis).
        publisher = JobPublisher(settings)
        own_broker: aioredis.Redis | None = None  # a client of its own, closed at shutdown
        if not settings.broker_is_amqp and settings.effective_broker_url != settings.redis_url:
            own_broker = async_client(settings.effective_broker_url,
                                      timeout_s=settings.redis_socket_timeout_s,
                                      max_connections=4)
        broker = None if settings.broker_is_amqp else own_broker or app.state.redis
        app.state.jobs = JobService(
            AsyncJobStore(app.state.redis, settings.jobs_key_prefix,
                          result_ttl_s=settings.job_result_ttl_s,
                          active_ttl_s=settings.job_active_ttl_s,
                          max_stored=settings.tenant_max_stored_jobs), publisher, settings,
            broker=broker)
        app.state.api_keys = AsyncKeyStore(app.state.redis, settings.jobs_key_prefix)
        app.state.limiter = Limiter(app.state.redis, settings.jobs_key_prefix,
                                    rate_per_s=settings.rate_limit_per_s,
                                    burst=settings.rate_limit_burst,
                                    tenant_max_active=settings.tenant_max_active_jobs)
        # The address uvicorn really binds decides open vs keys, not OPTIM_HOST alone.
        bound = bound_host()
        if bound is not None and bound != settings.host:
            log.info("auth: the server binds %s (OPTIM_HOST says %s): deciding for %s",
                     bound, settings.host, bound)
            settings.host = bound
        await check_auth(settings, app.state.api_keys)
        # SSE: one reader per job on a pool of its own, under a cap (app.services.events).
        app.state.events = EventHub(
            async_client(settings.redis_url,
                         timeout_s=max(settings.redis_socket_timeout_s, 3.0),
                         max_connections=settings.sse_max_streams + 1),
            app.state.redis, JobKeys(settings.jobs_key_prefix),
            max_streams=settings.sse_max_streams,
            max_streams_per_tenant=settings.sse_max_streams_per_tenant,
            retry_after_s=settings.retry_after_s)
        reaper = asyncio.create_task(_reap_forever(app.state.jobs, settings.reaper_interval_s))
        try:
            yield
        finally:
            reaper.cancel()
            await _bounded("the reaper", reaper)
            publisher.close()
            await _bounded("the advice cache's writes", app.state.advice_cache.drain())
            await _bounded("the event streams", app.state.events.aclose())
            await _bounded("the Redis clients", asyncio.gather(
                app.state.redis.aclose(), app.state.cache_redis.aclose(),
                *([own_broker.aclose()] if own_broker is not None else [])))

    app = FastAPI(
        title="optim-advisor",
        version=optim_core.__version__,
        description="Optimizer settings from a model spec, each value explained by a guideline "
                    "rule; LR range tests and short optimizer trials as background jobs.",
        lifespan=lifespan,
        docs_url=None,  # served from shipped assets by app.api.routes.ui, not from a CDN
        redoc_url=None,
        openapi_tags=TAGS,
    )
    app.state.settings = settings
    app.state.http_metrics = HttpMetrics()
    problems.install(app)
    unavailable.install(app, settings.retry_after_s)
    app.add_middleware(RequestContextMiddleware, header=settings.request_id_header,
                       metrics=app.state.http_metrics, max_body_bytes=settings.max_request_bytes)
    # 400, 405, 413 and 422 are declared on each operation they can happen on by
    # app.core.openapi, which knows which routes read a body and which check their query.
    app.include_router(health.router)
    app.include_router(advice.router, prefix="/v1")
    app.include_router(jobs.router, prefix="/v1")
    app.include_router(plots.router, prefix="/v1")
    app.include_router(rules.router, prefix="/v1")
    ui.install(app)
    openapi.install(app, [problems.Problem, StatusEventData, ProgressEventData,
                          RangeTestJobRequest, AdviceRequest],
                    security=(deps.BEARER_SCHEME, deps.needs_caller))
    return app


app = create_app()
