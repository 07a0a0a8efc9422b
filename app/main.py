"""Application factory: settings in, a FastAPI app out. ``uvicorn app.main:app`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

import optim_core
from app.api.routes import advice, health, jobs, plots, ui
from app.core import problems, unavailable
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.metrics import HttpMetrics
from app.core.middleware import RequestContextMiddleware
from app.services.advice_cache import AdviceCache
from app.services.jobs import JobService
from app.services.publish import JobPublisher
from workers.jobstore import AsyncJobStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Clients are created here, not at import: tests and workers build apps with other URLs.
        app.state.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_socket_timeout_s,
            socket_connect_timeout=settings.redis_socket_timeout_s, decode_responses=True)
        app.state.cache_redis = aioredis.Redis.from_url(
            settings.effective_cache_redis_url, socket_timeout=settings.redis_socket_timeout_s,
            socket_connect_timeout=settings.redis_socket_timeout_s, decode_responses=True)
        # The advice cache holds its circuit-breaker state: one per app, over the cache Redis.
        app.state.advice_cache = AdviceCache(
            app.state.cache_redis, ttl_s=settings.advice_cache_ttl_s,
            timeout_s=settings.advice_cache_timeout_s,
            retry_after_s=settings.advice_cache_retry_after_s)
        # Jobs: the job store (same Redis as the broker) and a Celery producer (no task bodies).
        publisher = JobPublisher(settings)
        app.state.jobs = JobService(
            AsyncJobStore(app.state.redis, settings.jobs_key_prefix,
                          result_ttl_s=settings.job_result_ttl_s,
                          active_ttl_s=settings.job_active_ttl_s,
                          index_max=settings.jobs_index_max_entries), publisher, settings)
        try:
            yield
        finally:
            publisher.close()
            await app.state.redis.aclose()
            await app.state.cache_redis.aclose()

    app = FastAPI(
        title="optim-advisor",
        version=optim_core.__version__,
        description="Optimizer settings from a model spec, each value explained by a guideline "
                    "rule; LR range tests and short optimizer trials as background jobs.",
        lifespan=lifespan,
        docs_url=None,  # served from shipped assets by app.api.routes.ui, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.http_metrics = HttpMetrics()
    problems.install(app)
    unavailable.install(app, settings.retry_after_s)
    app.add_middleware(RequestContextMiddleware, header=settings.request_id_header,
                       metrics=app.state.http_metrics, max_body_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    app.include_router(advice.router, prefix="/v1", responses=problems.COMMON_RESPONSES)
    app.include_router(jobs.router, prefix="/v1", responses=problems.COMMON_RESPONSES)
    app.include_router(plots.router, prefix="/v1", responses=problems.COMMON_RESPONSES)
    ui.install(app)
    return app


app = create_app()
