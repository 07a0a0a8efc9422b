"""/healthz (alive; checks nothing external), /readyz (Redis and a live worker), /metrics
(this process's HTTP metrics always; the job metrics read from Redis when it answers)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import AdminDep, RedisDep, SettingsDep
from app.api.responses import problems
from app.core import metrics
from app.core.problems import ProblemError
from app.core.routing import ContractRoute
from workers.jobstore import heartbeat_age_ok

router = APIRouter(tags=["operations"], route_class=ContractRoute)


@router.get("/healthz", summary="The process is alive (always open)", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready: Redis answers and a worker is alive (open, for probes)",
            operation_id="readyz", responses=problems(503))
async def readyz(request: Request, redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    retry = {"Retry-After": str(settings.retry_after_s)}
    try:
        await redis.ping()
        workers = await request.app.state.jobs.store.live_workers(
            settings.worker_heartbeat_ttl_s)
    except (aioredis.RedisError, OSError) as exc:
        raise ProblemError(503, "Not ready", f"Redis is not answering: {type(exc).__name__}",
                           type_="not-ready", headers=retry, redis="down") from exc
    live = [w for w in workers if heartbeat_age_ok(w, settings.worker_heartbeat_ttl_s)]
    if not live:
        raise ProblemError(503, "Not ready", "no live worker (no fresh heartbeat)",
                           type_="not-ready", headers=retry, redis="ok", workers=0)
    return {"status": "ready", "redis": "ok",
            "workers": [{"hostname": w.get("hostname"), "queues": w.get("queues", [])}
                        for w in live]}


@router.get("/metrics", summary="Prometheus metrics (admin role when keys are required)",
            response_class=Response, operation_id="metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"},
                       **problems(401, 403, 429)})
async def prometheus_metrics(request: Request, redis: RedisDep, settings: SettingsDep,
                             admin: AdminDep) -> Response:
    jobs = request.app.state.jobs
    # queue depths are read where the Redis broker keeps its lists (its own URL, if it has one)
    body = await metrics.render(request.app.state.http_metrics, jobs.store, jobs.broker or redis,
                                settings.broker_key_prefix, settings.worker_heartbeat_ttl_s)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
