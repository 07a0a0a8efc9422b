"""Publishing jobs to Celery from the API without blocking the event loop.

``send_task`` is blocking network I/O (and can hang while the broker is down): it runs in a worker
thread under a deadline, with Celery's bounded publish retry policy. Failing that, the caller gets
:class:`ServiceUnavailable` and answers 503 with ``Retry-After``. Tasks are published by name
(:mod:`workers.names`): the API never imports their bodies.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from celery import Celery

from app.core.config import Settings
from app.core.problems import ProblemError
from workers import names
from workers.config import broker_priority, create_celery
from workers.jobstore import AsyncJobStore, heartbeat_age_ok

log = logging.getLogger("app.publish")


class ServiceUnavailable(Exception):
    """The broker or the job store did not answer in time."""


async def choose_queue(device: str, store: AsyncJobStore, heartbeat_ttl_s: float,
                       retry_after_s: int = 30) -> tuple[str, str]:
    """(queue, device for the worker). ``auto`` goes to the gpu queue only while a live worker
    consumes it; otherwise it runs on the cpu queue, as ``cpu``. ``cuda`` without a live GPU
    worker is refused (422 ``no-gpu-worker`` on ``body.device``, saying why) rather than queued
    to wait for ever."""
    if device == "cpu":
        return names.CPU_QUEUE, "cpu"
    workers = await store.live_workers(heartbeat_ttl_s)
    gpu_live = any(names.GPU_QUEUE in w.get("queues", []) and heartbeat_age_ok(w, heartbeat_ttl_s)
                   for w in workers)
    if gpu_live:
        return names.GPU_QUEUE, "cuda"
    if device == "cuda":
        # A 422 on the field, not a 5xx: nothing failed, the request asks for hardware this
        # deployment does not have right now, and the fix is in the request (or in waiting).
        allowed = "'auto' or 'cpu' while no GPU worker is live"
        raise ProblemError(
            422, "No GPU worker is available",
            f"device 'cuda' needs a live worker consuming the '{names.GPU_QUEUE}' queue, and "
            f"none has sent a heartbeat in the last {heartbeat_ttl_s:g} s, so the job would "
            "wait with nothing to run it; submit it with device 'auto' (it then runs on a CPU "
            "worker) or again once a GPU worker is up", type_="no-gpu-worker",
            headers={"Retry-After": str(retry_after_s)}, queue=names.GPU_QUEUE,
            errors=[{"field": "body.device", "message": "no live GPU worker", "allowed": allowed,
                     "value": device}])
    return names.CPU_QUEUE, "cpu"


def _kwargs_summary(job_id: str, kind: str, device: str, generation: int) -> str:
    return repr({"job_id": job_id, "kind": kind, "device": device, "generation": generation,
                 "request": "<omitted: GET /v1/jobs/{id} has it>"})


class JobPublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery: Celery = create_celery(settings)  # Settings is-a WorkerSettings
        self.timeout_s = settings.job_publish_timeout_s

    async def publish(self, *, kind: str, job_id: str, request: dict[str, Any], device: str,
                      queue: str, priority: int | None, request_id: str | None,
                      generation: int = 0) -> None:
        message_priority = broker_priority(self.settings, priority)

        def send() -> None:
            self.celery.send_task(
                names.TASK_BY_KIND[kind], task_id=job_id, queue=queue, priority=message_priority,
                kwargs={"job_id": job_id, "request": request, "device": device,
                        "request_id": request_id, "generation": generation},
                # What Flower (task events) shows instead of the kwargs: never the request
                # body, which can be large and is the user's data.
                argsrepr="()", kwargsrepr=_kwargs_summary(job_id, kind, device, generation),
                headers={"request_id": request_id})

        try:
            with anyio.fail_after(self.timeout_s):
                await anyio.to_thread.run_sync(send, abandon_on_cancel=True)
        except Exception as exc:  # kombu OperationalError, redis errors, the deadline
            log.warning("publish failed", extra={"job_id": job_id, "error": repr(exc)})
            raise ServiceUnavailable(f"could not queue the job: {type(exc).__name__}") from exc

    async def revoke(self, job_id: str) -> None:
        """Best effort: a queued job is also refused by the task itself (it checks its record)."""
        try:
            with anyio.fail_after(self.timeout_s):
                await anyio.to_thread.run_sync(lambda: self.celery.control.revoke(job_id),
                                               abandon_on_cancel=True)
        except Exception as exc:
            log.warning("revoke failed", extra={"job_id": job_id, "error": repr(exc)})

    def close(self) -> None:
        self.celery.close()
