"""Prometheus metrics: HTTP requests by route and status (this process), and, read from Redis at
scrape time (so that every API replica agrees), jobs by state, queue depths, live workers and the
job duration histogram written by the workers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError

from workers.config import PRIORITY_STEPS, queue_keys
from workers.jobstore import DURATION_BUCKETS, AsyncJobStore
from workers.names import QUEUES, TASK_BY_KIND

log = logging.getLogger("app.metrics")


class HttpMetrics:
    """Per-app registry (tests build many apps; the global registry would refuse duplicates)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("optim_http_requests", "HTTP requests", ["route", "method",
                                                                         "status"],
                                registry=self.registry)
        self.latency = Histogram("optim_http_request_duration_seconds", "HTTP request latency",
                                 ["route", "method"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class _Snapshot:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def job_families(store: AsyncJobStore, broker: aioredis.Redis, broker_prefix: str,
                       heartbeat_ttl_s: float) -> list[Metric]:
    from workers.jobstore import heartbeat_age_ok

    current, entered = await store.state_counts()
    now = GaugeMetricFamily("optim_jobs", "Jobs now queued or running", labels=["state"])
    for state, n in sorted(current.items()):
        now.add_metric([state], n)
    ever = CounterMetricFamily("optim_jobs_entered", "Jobs that entered each state",
                               labels=["state"])
    for state, n in entered.items():
        ever.add_metric([state], n)

    pipe = broker.pipeline(transaction=False)
    for q in QUEUES:
        for key in queue_keys(broker_prefix, q):
            pipe.llen(key)
    lengths: list[Any] = await pipe.execute()
    depth = GaugeMetricFamily("optim_queue_depth", "Messages waiting in each Celery queue",
                              labels=["queue"])
    n_steps = len(PRIORITY_STEPS)
    for i, q in enumerate(QUEUES):
        depth.add_metric([q], sum(int(x) for x in lengths[i * n_steps:(i + 1) * n_steps]))

    workers = [w for w in await store.live_workers(heartbeat_ttl_s)
               if heartbeat_age_ok(w, heartbeat_ttl_s)]
    live = GaugeMetricFamily("optim_workers_live", "Workers with a fresh heartbeat, by queue",
                             labels=["queue"])
    for q in QUEUES:
        live.add_metric([q], sum(1 for w in workers if q in w.get("queues", [])))

    hist = HistogramMetricFamily("optim_job_duration_seconds", "Job run time in the worker",
                                 labels=["kind"])
    for kind in TASK_BY_KIND:
        raw = await store.durations(kind)
        buckets = [(f"{le:g}", raw.get(f"le:{le:g}", 0.0)) for le in DURATION_BUCKETS]
        buckets.append(("+Inf", raw.get("count", 0.0)))
        hist.add_metric([kind], buckets, sum_value=raw.get("sum", 0.0))
    return [now, ever, depth, live, hist]


async def render(http: HttpMetrics, store: AsyncJobStore, broker: aioredis.Redis,
                 broker_prefix: str, heartbeat_ttl_s: float) -> bytes:
    """Everything, or — while Redis does not answer — this process's HTTP metrics and
    ``optim_redis_up 0``: an outage is exactly when the HTTP error rates matter, so the scrape
    must not fail as a whole."""
    up = GaugeMetricFamily("optim_redis_up", "1 if the job-store Redis answered this scrape")
    try:
        families = await job_families(store, broker, broker_prefix, heartbeat_ttl_s)
        up.add_metric([], 1)
    except (RedisError, OSError) as exc:
        log.warning("metrics: Redis unavailable", extra={"error": repr(exc)[:300]})
        families = []
        up.add_metric([], 0)
    snap = CollectorRegistry()
    snap.register(_Snapshot([up, *families]))
    return generate_latest(http.registry) + generate_latest(snap)
