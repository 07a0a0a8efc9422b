"""Task bodies. Like views: unpack plain JSON (job id + request dict), call the core, write plain
data to the job record. ``optim_core.training.experiment`` (torch) is imported inside the task, never at
module level, so the worker's parent process never initialises CUDA."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from billiard.einfo import ExceptionInfo
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded, TimeLimitExceeded

from workers import logs, names
from workers.celery_app import app
from workers.jobstore import JobStore
from workers.jobstore.clients import sync_client
from workers.names import BOOT_ENV
from workers.problems import from_exception, problem
from workers.results import job_result
from workers.runtime import settings

log = logging.getLogger("workers.tasks")
T = TypeVar("T")

_store: tuple[int, JobStore] | None = None


def get_store() -> JobStore:
    """One store per process (pool children are forked: never share a parent's connections)."""
    global _store
    if _store is None or _store[0] != os.getpid():
        client = sync_client(settings.redis_url, timeout_s=settings.redis_socket_timeout_s)
        _store = (os.getpid(), JobStore(client, settings.jobs_key_prefix,
                                        result_ttl_s=settings.job_result_ttl_s))
    return _store[1]


class CancelPoller:
    """``should_stop`` for the core: reads, at most every ``interval_s``, the job's cancel flag,
    its generation and this worker's draining flag (set when the worker starts a warm shutdown).
    ``reason`` says which one stopped the job: ``cancel`` ends it cancelled, ``drain`` hands it
    back to the queue, ``superseded`` (the job was taken for lost and queued again: another
    delivery owns it now) drops this run without a write."""

    def __init__(self, store: JobStore, job_id: str, interval_s: float,
                 hostname: str | None = None, generation: int = 0) -> None:
        self.store, self.job_id, self.interval_s = store, job_id, interval_s
        self.hostname, self.generation = hostname, generation
        self._next = 0.0
        self.reason: str | None = None

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.reason is None and now >= self._next:
            self._next = now + self.interval_s
            try:
                self.reason = self.store.stop_reason(self.job_id, self.hostname,
                                                     self.generation)
            except redis.RedisError as exc:  # a blip must not kill a long job
                log.warning("cancel check failed: %s", exc)
        return self.reason is not None


def _report(store: JobStore, job_id: str, event: Any) -> None:
    """Progress is best effort: a Redis blip must not end a long job."""
    try:
        store.progress(job_id, event)
    except redis.RedisError as exc:
        log.warning("progress not recorded: %s", exc)


def _complete(event: Any) -> dict[str, Any]:
    """The progress of a job that succeeded: complete (a run that stopped early, e.g. at
    divergence, has still done all its work), with the last LR and loss it reported."""
    total = int(getattr(event, "total", 0) or 0)
    return {"step": total, "total": total, "lr": getattr(event, "lr", None),
            "loss": getattr(event, "loss", None)}


def release_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _entry_point(kind: str) -> Callable[..., dict[str, Any]]:
    """The core's entry point for ``kind``, its plain data shaped into the typed result
    (:mod:`workers.results`) that the job stores."""
    from optim_core.training import experiment  # torch: only ever imported inside a pool child

    run = experiment.run_range_test if kind == "range_test" else experiment.run_trials

    def shaped(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return job_result(kind, run(request, **kwargs))

    return shaped


class JobTask(Task):
    """Fails the job record when the task itself fails: the hard time limit killed the child
    (Celery calls on_failure in the parent then), the job store stayed unreachable through the
    begin phase's retries, or a limit landed outside the training. Without this the record would
    stay queued or running, and identical requests would keep joining it. Outcomes of the
    training itself are written inside :func:`run_job`."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: ExceptionInfo | None) -> None:
        if isinstance(exc, TimeLimitExceeded):
            doc = from_exception(exc, f"The job was stopped after "
                                 f"{settings.job_hard_time_limit_s} s (hard limit).",
                                 limit_s=settings.job_hard_time_limit_s)
        else:
            doc = from_exception(exc)
        try:
            outcome, _ = get_store().transition(
                task_id, "failed", allowed_from=["running", "queued"], fields={"problem": doc},
                generation=int((kwargs or {}).get("generation", 0)))
            log.warning("task failed: job marked failed", extra={
                "job_id": task_id, "error": repr(exc), "stored": outcome})
        except redis.RedisError:
            log.exception("could not mark job %s failed after %r", task_id, exc)


def run_job(task: Task, job_id: str, kind: str, request: dict[str, Any], device: str,
            request_id: str | None, generation: int = 0) -> dict[str, Any]:
    token = logs.job_context.set({"job_id": job_id, "request_id": request_id or "",
                                  "kind": kind})
    try:
        return _run_job(task, job_id, kind, request, device, generation)
    finally:
        logs.job_context.reset(token)


# Redis errors worth retrying (a blip, a failover): the begin phase retries the task, the final
# write retries in place.
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)
BEGIN_MAX_RETRIES = 5


def _begin_phase(task: Task, store: JobStore, job_id: str, worker: str, generation: int,
                 boot: str) -> Any:
    """Start the job, or retry the *task* on a Redis blip. Only this phase retries the task:
    nothing has been trained yet, and the record's delivery count bounds the starts anyway."""
    try:
        return store.begin(job_id, max_deliveries=settings.job_max_deliveries, worker=worker,
                           pid=os.getpid(), generation=generation, boot=boot)
    except _TRANSIENT as exc:
        retries = getattr(task.request, "retries", 0) or 0
        log.warning("job store unreachable at start; retrying the task", extra={
            "retries": retries, "error": repr(exc)})
        raise task.retry(exc=exc, countdown=min(30, 2 ** retries),
                         max_retries=BEGIN_MAX_RETRIES) from exc


def _with_retries(what: str, fn: Callable[[], T], *, attempts: int, first_delay_s: float,
                  max_delay_s: float) -> T:
    """``fn()``, retried with bounded exponential backoff on transient Redis errors (then the
    last error is raised)."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except _TRANSIENT as exc:
            if attempt == attempts:
                raise
            log.warning("%s failed; retrying in %.1f s", what, delay,
                        extra={"attempt": attempt, "error": repr(exc)})
            time.sleep(delay)
            delay = min(max_delay_s, delay * 2)
    raise AssertionError("unreachable")


def _finish(store: JobStore, job_id: str, kind: str, status: str, fields: dict[str, Any],
            elapsed: float, generation: int) -> str:
    """The final write, retried in place: a Redis blip here must never re-run the training
    (the task is not retried; its message is acked). If Redis stays away past the retries the
    job's record is left as it is and the error logged."""
    attempts = settings.job_final_write_attempts
    try:
        # A retry after a lost reply is harmless: the script then finds the job already ended
        # and refuses the second write.
        outcome, prev = _with_retries(
            "final job write", lambda: store.transition(
                job_id, status, allowed_from=["running"],
                fields={**fields, "run_seconds": round(elapsed, 3)}, generation=generation),
            attempts=attempts, first_delay_s=0.5, max_delay_s=10.0)
    except _TRANSIENT:
        log.exception("could not store the job's outcome; the record stays as it was",
                      extra={"status": status})
        return "unstored"
    try:
        # Fewer tries: a metric is not worth holding the pool child for a minute.
        _with_retries("duration observation", lambda: store.observe_duration(kind, elapsed),
                      attempts=min(3, attempts), first_delay_s=0.5, max_delay_s=10.0)
    except _TRANSIENT:
        log.warning("could not record the job's duration")
    log.info("job ended", extra={"status": status, "seconds": round(elapsed, 3),
                                 "stored": outcome, "was": prev})
    return outcome


def _hand_back(store: JobStore, job_id: str, delivery: int) -> None:
    """The worker is shutting down: the job goes back to ``queued`` (its delivery not counted)
    and its message back to the queue at once, for another worker (or this one, restarted)."""
    try:
        outcome, detail = _with_retries(
            "requeue on shutdown", lambda: store.requeue(job_id, delivery=delivery,
                                                         reason="worker-shutdown"),
            attempts=3, first_delay_s=0.2, max_delay_s=1.0)
        log.info("job handed back: worker shutting down",
                 extra={"stored": outcome, "detail": detail})
    except _TRANSIENT:  # the message still goes back; the next start counts a delivery
        log.exception("could not mark the job queued on shutdown")
    # acks_late: Reject(requeue=True) makes the parent put the message back at the head of its
    # queue now (kombu's Redis QoS.reject -> restore_by_tag), not after the visibility timeout.
    raise Reject("worker shutting down", requeue=True)


def _run_job(task: Task, job_id: str, kind: str, request: dict[str, Any], device: str,
             generation: int) -> dict[str, Any]:
    store = get_store()
    worker = task.request.hostname or socket.gethostname()
    boot = boot_id() or worker
    try:
        return _run_started(task, store, job_id, kind, request, device, generation, worker, boot)
    finally:
        with contextlib.suppress(redis.RedisError):  # else the reaper's sweep drops it later
            store.forget_job(boot, job_id)  # ended, handed back or never started here


def boot_id() -> str | None:
    """This worker incarnation's id, set by its main process at start (workers.lifecycle) and
    inherited by its pool children."""
    return os.environ.get(BOOT_ENV)


def _run_started(task: Task, store: JobStore, job_id: str, kind: str, request: dict[str, Any],
                 device: str, generation: int, worker: str, boot: str) -> dict[str, Any]:
    begin = _begin_phase(task, store, job_id, worker, generation, boot)
    if begin.action in ("missing", "skip"):
        log.info("job not started", extra={"reason": begin.action, "status": begin.detail})
        return {"job_id": job_id, "status": begin.detail or "missing"}
    if begin.action == "exhausted":
        deliveries = int(begin.detail)
        doc = problem(500, "too-many-deliveries", "The job kept stopping its worker",
                      f"The job was delivered {deliveries} times (at most "
                      f"{settings.job_max_deliveries} allowed); its worker died each time, "
                      "e.g. out of memory.", deliveries=deliveries,
                      max_deliveries=settings.job_max_deliveries)
        _with_retries("failing an exhausted job", lambda: store.transition(
            job_id, "failed", allowed_from=["running", "queued"], fields={"problem": doc}),
            attempts=settings.job_final_write_attempts, first_delay_s=0.5, max_delay_s=10.0)
        log.error("job failed: too many deliveries", extra={"deliveries": deliveries})
        return {"job_id": job_id, "status": "failed"}

    delivery = int(begin.detail)
    log.info("job started", extra={"delivery": delivery, "device": device})
    t0 = time.monotonic()
    status, fields = "failed", {}
    poller = CancelPoller(store, job_id, settings.job_cancel_poll_s, hostname=worker,
                          generation=generation)
    last: list[Any] = []

    def report(event: Any) -> None:
        last[:] = [event]
        _report(store, job_id, event)

    try:
        out = _entry_point(kind)(request, device=device, progress=report,
                                 should_stop=poller, max_params=settings.max_params)
        status, fields = "succeeded", {"result": out,
                                       "progress": _complete(last[0] if last else None)}
    except SoftTimeLimitExceeded as exc:
        limit = settings.job_soft_time_limit_s
        fields = {"problem": from_exception(
            exc, f"The job was stopped after {limit} s (soft limit).", limit_s=limit)}
    except Exception as exc:
        from optim_core.errors import Cancelled, OptimCoreError

        if isinstance(exc, Cancelled) and poller.reason == "drain":
            _hand_back(store, job_id, delivery)  # raises Reject (the finally still runs)
        if isinstance(exc, Cancelled) and poller.reason == "superseded":
            log.warning("job superseded: it was queued again as lost; this run is dropped",
                        extra={"generation": generation})
            return {"job_id": job_id, "status": "superseded"}
        if isinstance(exc, Cancelled):
            status, fields = "cancelled", {}
        else:
            if isinstance(exc, OptimCoreError):  # a bad spec or a training failure: expected
                log.warning("job failed: %s", exc)
            else:
                log.exception("job raised")
            fields = {"problem": from_exception(exc)}
    finally:
        release_accelerator_memory()
    elapsed = time.monotonic() - t0
    _finish(store, job_id, kind, status, fields, elapsed, generation)
    return {"job_id": job_id, "status": status}


# No autoretry_for: a task-level retry re-runs the whole body, i.e. the training. Only the begin
# phase retries the task (_begin_phase); the final write retries in place (_finish).
@app.task(name=names.RANGE_TEST_TASK, bind=True, base=JobTask)
def range_test(self: Task, job_id: str, request: dict[str, Any], device: str = "auto",
               request_id: str | None = None, generation: int = 0) -> dict[str, Any]:
    return run_job(self, job_id, "range_test", request, device, request_id, generation)


@app.task(name=names.TRIALS_TASK, bind=True, base=JobTask)
def trials(self: Task, job_id: str, request: dict[str, Any], device: str = "auto",
           request_id: str | None = None, generation: int = 0) -> dict[str, Any]:
    return run_job(self, job_id, "trials", request, device, request_id, generation)
