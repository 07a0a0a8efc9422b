"""Submitting, finding and cancelling jobs: cache keys, claims, routing and publishing.

Rules (documented in the OpenAPI descriptions too):

* A job's key is ``content_hash({kind, spec, device}, versions={optim_core, result_schema})`` where
  ``spec`` is the request with its defaults filled in and without ``force``, ``priority`` and
  ``labels`` (they do not change the answer) and ``device`` is where it will run (cpu/cuda).
* The first submission claims the key atomically (a Lua script: ``SET NX`` + create the record);
  an identical one while that job is queued or running gets the same job (202,
  ``deduplicated: true``); once it succeeded, its stored result comes back at once (200,
  ``cached: true``) until it expires (``job_result_ttl_s``). ``force: true`` always runs a new job
  (which then owns the key). A failed or cancelled job releases the key (compare-and-delete).
* A running job whose worker *incarnation* stopped beating (its machine or main process died;
  liveness is per boot id, so a worker restarted under the same name does not count) is
  re-queued when it is next read, or by the reaper's sweep (:meth:`JobService.reap_lost_workers`,
  every ``reaper_interval_s`` in each API process) within heartbeat TTL + one interval, under a
  new *generation*, and published again at once: another worker runs it
  without waiting for the broker's visibility timeout. Its lost delivery counts, so a job that
  keeps killing whole workers fails after ``job_max_deliveries`` (``worker-lost``). Messages and
  writes of an older generation are refused by the job store.
* With a Redis broker, a queued job whose message the broker holds nowhere — in no queue list and
  not delivered-unacknowledged — at two reaper sweeps ``job_lost_message_after_s`` apart is given
  a new generation and published again (:meth:`JobService.recover_lost_messages`). kombu's Redis
  transport loses a message that a worker's ``BRPOP`` took off its list as the connection
  dropped; RabbitMQ keeps an unacknowledged delivery, so there is nothing to recover there.
* A job whose publish fails is failed (``broker-unavailable``, the key released) and the request
  answers 503. When the store is down too, so that the failure cannot be recorded, the job is
  remembered in this process and the reaper's next sweep publishes it (or fails it) once the
  store answers: a resubmission that joined it in between does not wait for ever.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

import optim_core
from app.core.config import Settings
from app.core.problems import ProblemError
from app.services.broker_messages import job_messages
from app.services.publish import JobPublisher, ServiceUnavailable, choose_queue
from optim_core.canonical import content_hash
from workers.jobstore import AsyncJobStore, new_job_id
from workers.names import QUEUES, RESULT_SCHEMA_VERSION

log = logging.getLogger("app.job_service")


class TenantFull(Exception):
    """The tenant already has its maximum of queued + running jobs (decided in the job store's
    submit script, so simultaneous submissions cannot both pass)."""

    def __init__(self, active: int) -> None:
        super().__init__(f"{active} jobs queued or running")
        self.active = active


@dataclass(frozen=True)
class Submission:
    record: dict[str, Any]
    created: bool = False
    cached: bool = False
    deduplicated: bool = False


@dataclass(frozen=True)
class JobOptions:
    device: str = "auto"
    force: bool = False
    priority: int | None = None
    labels: dict[str, str] | None = None


def job_key(kind: str, spec: dict[str, Any], device: str, tenant: str) -> str:
    # The tenant is part of the key: identical requests de-duplicate within a tenant only.
    return content_hash({"kind": kind, "spec": spec, "device": device, "tenant": tenant},
                        versions={"optim_core": optim_core.__version__,
                                  "result_schema": RESULT_SCHEMA_VERSION})


class JobService:
    def __init__(self, store: AsyncJobStore, publisher: JobPublisher, settings: Settings,
                 broker: aioredis.Redis | None = None) -> None:
        """``broker``: a client of the Redis broker, when the broker is Redis (None for
        RabbitMQ): the reaper looks there for the messages of queued jobs."""
        self.store = store
        self.publisher = publisher
        self.broker = broker
        self.broker_prefix = settings.broker_key_prefix
        self.heartbeat_ttl_s = settings.worker_heartbeat_ttl_s
        self.max_deliveries = settings.job_max_deliveries
        self.lost_message_after_s = settings.job_lost_message_after_s
        # job id -> its publish arguments, for jobs left queued without a message (_publish)
        self._unpublished: dict[str, dict[str, Any]] = {}
        # (job id, generation) -> when a sweep first found the job queued with no message
        self._absent: dict[tuple[str, int], float] = {}

    async def submit(self, kind: str, spec: dict[str, Any], opts: JobOptions,
                     request_id: str | None, tenant: str, max_active: int = 0) -> Submission:
        """``max_active`` > 0: refuse (:class:`TenantFull`) a new job when the tenant already
        has that many queued or running; an identical request still joins its job."""
        queue, device = await choose_queue(opts.device, self.store, self.heartbeat_ttl_s)
        key = job_key(kind, spec, device, tenant)
        record = {"kind": kind, "tenant": tenant, "queue": queue, "device": device,
                  "requested_device": opts.device, "priority": opts.priority,
                  "labels": opts.labels or {}, "request": spec, "request_id": request_id}
        for _ in range(3):  # a stale claim (expired or ended job) is released, then retried
            job_id = new_job_id(tenant)
            sub = await self.store.submit(job_id, key, record, force=opts.force,
                                          max_active=max_active)
            if sub.outcome == "full":
                raise TenantFull(int(sub.job_id))
            if sub.outcome == "created":
                await self._publish(job_id, kind, spec, device, queue, opts.priority,
                                    request_id)
                # Best effort, after the publish: a failure here must not fail a queued job (the
                # next submission of the tenant evicts what this one did not).
                with contextlib.suppress(RedisError, OSError):
                    await self.store.evict_beyond_cap(tenant)
                rec = await self.store.get(job_id)
                return Submission(rec or {**record, "id": job_id, "status": "queued"},
                                  created=True)
            existing = await self.get(sub.job_id)  # reaps a job whose worker is gone
            if existing is None or existing["status"] in ("failed", "cancelled"):
                await self.store.release_claim(key, sub.job_id)
                continue
            if existing["status"] == "succeeded":
                return Submission(existing, cached=True)
            return Submission(existing, deduplicated=True)
        raise ServiceUnavailable("could not claim the job's key; try again")

    async def _publish(self, job_id: str, kind: str, spec: dict[str, Any], device: str,
                       queue: str, priority: int | None, request_id: str | None,
                       generation: int = 0) -> None:
        try:
            await self.publisher.publish(kind=kind, job_id=job_id, request=spec, device=device,
                                         queue=queue, priority=priority,
                                         request_id=request_id, generation=generation)
        except ServiceUnavailable as exc:
            doc = ProblemError(503, "The job could not be queued", str(exc),
                               type_="broker-unavailable").to_dict()
            try:
                await self.store.transition(job_id, "failed", allowed_from=["queued"],
                                            fields={"problem": doc})
            except Exception:
                # The store is down too (one Redis as store and broker restarting): the job
                # stays queued with no message, and a resubmission would join it and wait for
                # ever. The reaper's next sweep publishes it once the broker answers.
                self._unpublished[job_id] = {
                    "kind": kind, "spec": spec, "device": device, "queue": queue,
                    "priority": priority, "request_id": request_id, "generation": generation}
            raise

    async def _publish_again(self, job_id: str, record: dict[str, Any], generation: int) -> None:
        """A new message for a job the store has just moved to ``generation``, built from its
        record; a failed publish has failed the job (``_publish``), which its record then says."""
        with contextlib.suppress(ServiceUnavailable):
            await self._publish(job_id, record["kind"], record["request"], record["device"],
                                record["queue"], record.get("priority"),
                                record.get("request_id"), generation=generation)

    async def publish_unpublished(self) -> int:
        """One sweep over the jobs whose publish failed while the store was down too: each
        still queued is published now (the job then runs; a delivery twice is refused by the
        job store as any redelivery is) or, if the broker still does not answer, failed as
        ``broker-unavailable``; one whose store is still down waits for the next sweep. Returns
        the number settled. Held in this API process: if it dies first, the record expires
        (``job_active_ttl_s``)."""
        settled = 0
        for job_id in list(self._unpublished):
            record = await self.store.get(job_id)  # raises while the store is down: next sweep
            args = self._unpublished.pop(job_id)
            if record is not None and record["status"] == "queued":
                with contextlib.suppress(ServiceUnavailable):  # failed, or remembered again
                    await self._publish(job_id, args["kind"], args["spec"], args["device"],
                                        args["queue"], args["priority"], args["request_id"],
                                        generation=args["generation"])
                    log.warning("job published late: its first publish failed with the store "
                                "down", extra={"job_id": job_id})
            settled += job_id not in self._unpublished
        return settled

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's record. A running job whose worker has stopped beating is re-queued and
        published again here (or failed as ``worker-lost`` once its deliveries are used up),
        rather than shown as running until the broker's visibility timeout restores it."""
        record = await self.store.get(job_id)
        if record is None or record["status"] != "running" or not record.get("worker"):
            return record
        worker = record["worker"]
        doc = ProblemError(
            500, "The job's worker was lost",
            f"worker {worker} stopped sending heartbeats while running this job (its machine or "
            f"process is gone), and the job has used all {self.max_deliveries} deliveries; "
            "submit the request again to run it anew",
            type_="worker-lost", worker=worker, max_deliveries=self.max_deliveries).to_dict()
        outcome, detail = await self.store.reap_if_worker_lost(
            job_id, worker, record.get("claim_key") or "", doc,
            max_deliveries=self.max_deliveries, boot=record.get("boot"),
            tenant=record.get("tenant"))
        if outcome == "requeued":
            log.warning("worker lost: job queued again", extra={
                "job_id": job_id, "worker": worker, "generation": int(detail)})
            await self._publish_again(job_id, record, int(detail))
        elif outcome == "lost":
            log.warning("job failed: worker lost", extra={"job_id": job_id, "worker": worker})
        else:
            return record
        return await self.store.get(job_id)

    async def reap_lost_workers(self) -> int:
        """One sweep of the reaper: every job started by a worker incarnation that stopped
        beating is re-queued (or failed as lost) through :meth:`get`, whether or not anyone
        polls it. Returns the number of jobs handled. Safe to run in several API processes at
        once: each state change is one guarded script."""
        handled = 0
        for boot in await self.store.dead_workers(self.heartbeat_ttl_s):
            job_ids = await self.store.worker_jobs(boot)
            done: list[str] = []
            for job_id in job_ids:
                rec = await self.get(job_id)
                if rec is None or rec["status"] != "running" or rec.get("boot") != boot:
                    done.append(job_id)
            handled += len(done)
            await self.store.forget_dead_worker(boot, done)
        return handled

    async def recover_lost_messages(self) -> int:
        """One sweep (Redis broker only): every job queued under a generation for which the broker
        holds no message — at this sweep and at one at least ``job_lost_message_after_s``
        before — is given a new generation and published again. Returns how many.

        Seen twice, far apart, because a message is legitimately nowhere for a moment: between the
        submit script and the publish, and between a worker's BRPOP and its HSET of the message
        into ``unacked``. A job that only waits in a long queue has its message in a list, so it
        keeps its place. Several API processes may run this at once: REPUBLISH_LUA lets only one
        of them move the generation, and only that one publishes."""
        if self.broker is None:
            return 0
        queued = await self.store.queued_jobs()
        queues = sorted({*QUEUES, *(rec["queue"] for rec in queued.values() if rec["queue"])})
        present = await job_messages(self.broker, self.broker_prefix, queues) if queued else set()
        now = time.monotonic()
        absent: dict[tuple[str, int], float] = {}
        recovered = 0
        for job_id, rec in queued.items():
            needed = (job_id, rec["generation"])  # the message the job waits for
            if needed in present or job_id in self._unpublished:
                continue
            first = absent[needed] = self._absent.get(needed, now)
            if now - first < self.lost_message_after_s:
                continue
            del absent[needed]
            generation = await self.store.republish_if_queued(*needed)
            if generation is None:  # started or cancelled meanwhile, or another process won
                continue
            record = await self.store.get(job_id)  # the whole record (the request) only now
            if record is None:  # expired meanwhile
                continue
            log.warning("message lost: job published again", extra={
                "job_id": job_id, "generation": generation,
                "absent_s": round(now - first, 1)})
            await self._publish_again(job_id, record, generation)
            recovered += 1
        self._absent = absent
        return recovered

    async def cancel(self, job_id: str) -> tuple[str, dict[str, Any] | None]:
        outcome = await self.store.request_cancel(job_id)
        if outcome == "cancelled":
            await self.publisher.revoke(job_id)
        return outcome, await self.store.get(job_id)
