"""The worker's (sync) side of the job store: begin, transition, progress, stop checks and
requeue; and worker heartbeats (the worker's main process and the container health check)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workers.jobstore.keys import DURATION_BUCKETS, JobKeys, now_iso
from workers.jobstore.records import (
    as_text,
    call_transition,
    decode_payloads,
    decode_record,
    progress_doc,
    record_tenant,
    state_keys,
)
from workers.jobstore.scripts import BEGIN_LUA, PROGRESS_LUA, REQUEUE_LUA, TRANSITION_LUA


@dataclass(frozen=True)
class Begin:
    """What a task found when it started: ``run`` (with the delivery number), ``skip`` (already
    ended, e.g. cancelled while queued), ``exhausted`` (too many deliveries) or ``missing``."""

    action: str
    detail: str


# --- the worker's (sync) store -----------------------------------------------------------------
class JobStore:
    def __init__(self, client: redis.Redis, prefix: str, *, result_ttl_s: int) -> None:
        self.r = client
        self.keys = JobKeys(prefix)
        self.result_ttl_s = result_ttl_s
        self._begin = client.register_script(BEGIN_LUA)
        self._transition = client.register_script(TRANSITION_LUA)
        self._requeue = client.register_script(REQUEUE_LUA)
        self._progress = client.register_script(PROGRESS_LUA)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return decode_record(self.r.hgetall(self.keys.job(job_id)))

    def begin(self, job_id: str, *, max_deliveries: int, worker: str, pid: int,
              generation: int = 0, boot: str | None = None) -> Begin:
        """``boot``: the worker incarnation whose heartbeat (``worker:{boot}``) proves the job
        alive; defaults to ``worker`` (tests that beat under a hostname)."""
        k = self.keys
        boot = boot or worker
        # The incarnation's job set is in another slot: added first (a hint the reaper checks
        # against the record's boot), taken back if the job does not run here.
        pipe = self.r.pipeline(transaction=False)
        pipe.sadd(k.worker_jobs(boot), job_id)
        pipe.expire(k.worker_jobs(boot), self.result_ttl_s)
        pipe.execute()
        action, detail = self._begin(
            keys=state_keys(k, job_id, self.tenant_of(job_id)),
            args=[max_deliveries, now_iso(), worker, pid, generation, boot])
        if as_text(action) != "run":
            self.forget_job(boot, job_id)
        return Begin(as_text(action), as_text(detail))

    def tenant_of(self, job_id: str) -> str:
        return record_tenant(self.r.hget(self.keys.job(job_id), "tenant"))

    def forget_job(self, boot: str, job_id: str) -> None:
        """The job no longer runs on ``boot`` (it ended or went back to the queue)."""
        self.r.srem(self.keys.worker_jobs(boot), job_id)

    def transition(self, job_id: str, to: str, *, allowed_from: Sequence[str],
                   fields: Mapping[str, Any] | None = None,
                   generation: int | None = None) -> tuple[str, str]:
        """Move the job to ``to`` if its status is in ``allowed_from`` and, when ``generation``
        is given, the job still belongs to that generation (see TRANSITION_LUA)."""
        claim, tenant = self.r.hmget(self.keys.job(job_id), ["claim_key", "tenant"])
        return call_transition(self._transition, self.keys,
                                (as_text(claim) if claim else "", record_tenant(tenant)),
                                job_id, to, allowed_from, fields, self.result_ttl_s, generation)

    def progress(self, job_id: str, event: Any) -> bool:
        """Record a progress event; False when the record no longer exists (nothing written)."""
        data = json.dumps(progress_doc(event), separators=(",", ":"))
        return bool(self._progress(keys=[self.keys.job(job_id), self.keys.events(job_id)],
                                   args=[data, now_iso()]))

    def stop_reason(self, job_id: str, hostname: str | None, generation: int = 0) -> str | None:
        """``cancel`` (the user asked), ``superseded`` (the job was taken for lost and handed to
        a newer generation: this run's result would be refused), ``drain`` (this worker is
        shutting down) or None, in one round trip. A cancel wins: the job then ends cancelled
        instead of going back to the queue."""
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.cancel(job_id))
        pipe.hget(self.keys.job(job_id), "generation")
        if hostname:
            pipe.get(self.keys.draining(hostname))
        values = pipe.execute()
        if values[0]:
            return "cancel"
        if int(values[1] or 0) != generation:
            return "superseded"
        if len(values) > 2 and values[2]:
            return "drain"
        return None

    def requeue(self, job_id: str, *, delivery: int, reason: str) -> tuple[str, str]:
        """running -> queued without counting ``delivery`` (see REQUEUE_LUA)."""
        k = self.keys
        outcome, detail = self._requeue(
            keys=state_keys(k, job_id, self.tenant_of(job_id)),
            args=[delivery, now_iso(), reason])
        return as_text(outcome), as_text(detail)

    def observe_duration(self, kind: str, seconds: float) -> None:
        key = self.keys.durations(kind)
        pipe = self.r.pipeline(transaction=False)
        for le in DURATION_BUCKETS:
            if seconds <= le:
                pipe.hincrby(key, f"le:{le:g}", 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.execute()


# --- worker heartbeats (sync: the worker's main process and the container health check) -------
def write_heartbeat(client: redis.Redis, keys: JobKeys, boot: str,
                    payload: Mapping[str, Any], ttl_s: int) -> None:
    """The payload key (with a TTL) and the incarnation's score in the ``workers`` zset."""
    now = time.time()
    # Two keys in two slots: no MULTI (Redis Cluster refuses it across slots). The payload first:
    # a beat whose zset score is missing is listed again at the next beat.
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.worker(boot), json.dumps({**payload, "ts": now}), ex=ttl_s)
    pipe.zadd(keys.workers, {boot: int(now * 1000)})
    pipe.execute()


def forget_worker(client: redis.Redis, keys: JobKeys, boot: str) -> None:
    """A clean stop: no more proof of life. The zset member stays (score 0) until the reaper
    has seen that none of its jobs is still running there."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.worker(boot))
    pipe.zadd(keys.workers, {boot: 0})
    pipe.execute()


def live_worker_payloads(client: redis.Redis, keys: JobKeys, ttl_s: float
                         ) -> list[dict[str, Any]]:
    """Sync twin of :meth:`AsyncJobStore.live_workers` (read-only: no pruning)."""
    cutoff = int((time.time() - ttl_s) * 1000)
    hostnames = [as_text(h) for h in client.zrangebyscore(keys.workers, cutoff, "+inf")]
    return decode_payloads(client.mget([keys.worker(h) for h in hostnames])) if hostnames else []


def heartbeat_age_ok(beat: Mapping[str, Any], ttl_s: float) -> bool:
    return time.time() - float(beat.get("ts", 0)) <= ttl_s
