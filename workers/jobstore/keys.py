"""The key layout of the job store in Redis, and the constants that size it.

One hash per job is the source of truth for its state (Celery calls every unknown id PENDING, so
its result backend is never read). State changes are Lua scripts, so that a cancel, a worker
starting and a worker finishing cannot interleave badly, and so that per-state counters stay
exact. The worker uses :class:`JobStore` (sync), the API :class:`AsyncJobStore` (redis.asyncio);
both share the key layout (:class:`JobKeys`) and the scripts.

Keys (``P`` is the configurable prefix, e.g. ``optim:``)::

    P job:{id}            hash: the job record
    P job:{id}:events     stream: status and progress events (SSE, resumable by stream id)
    P job:{id}:cancel     string: cooperative cancel flag polled by the running job
                          (the braces are literal: a Redis Cluster hash tag, so the three keys
                          of one job live in one slot)
    P claim:{hash}        string: job id owning an identical request (SET NX; compare-and-delete)
    P jobs:index          zset: job ids scored by creation time (ms × 1000 + seq mod 1000, so
                          ties within a millisecond keep submission order); newest first. Trimmed
                          on every submit: entries whose record must have expired (older than
                          active TTL + result TTL) and all but the newest ``index_max`` entries
    P jobs:seq            counter for the index's tie-break
    P stats:current       hash: jobs queued / running now
    P stats:entered       hash: jobs that entered each state, ever
    P stats:duration:{kind} hash: duration histogram buckets (+ sum, count)
    P workers             zset: worker incarnation (boot id) -> last heartbeat (ms); members
                          stay after their beats stop until the reaper has handled their jobs
    P worker:{boot}       string with TTL: that incarnation's heartbeat payload (hostname,
                          boot, queues, pid, ts); its existence is the proof of life
    P worker:{boot}:jobs  set: jobs started by that incarnation (removed as they end)
    P worker:{hostname}:draining  string with TTL: the worker is shutting down; its running
                          jobs stop at their next step check and go back to the queue
"""


from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

EVENTS_MAXLEN = 2000
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
JSON_FIELDS = ("request", "labels", "progress", "result", "problem")
INT_FIELDS = ("deliveries", "seq", "priority", "pid", "generation")
# A hash without these is not a job record (a partial write, or a late HSET after expiry).
REQUIRED_FIELDS = ("id", "kind", "status")
# What a list page shows: everything but the request and the result (they can be large).
SUMMARY_FIELDS = ("id", "kind", "tenant", "status", "queue", "device", "priority", "labels", "request_id",
                  "created_at", "started_at", "finished_at", "updated_at", "deliveries",
                  "cancel_requested", "progress", "problem", "generation", "worker")
INDEX_MAX_ENTRIES = 100_000
INDEX_TIE_BREAK = 1000  # index score = creation ms * 1000 + seq % 1000 (exact in a double)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class JobKeys:
    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id}}}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id}}}:events"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id}}}:cancel"

    def claim(self, dedup_key: str) -> str:
        return f"{self.prefix}claim:{dedup_key}"

    @property
    def index(self) -> str:
        return f"{self.prefix}jobs:index"

    @property
    def seq(self) -> str:
        return f"{self.prefix}jobs:seq"

    @property
    def stats_current(self) -> str:
        return f"{self.prefix}stats:current"

    @property
    def stats_entered(self) -> str:
        return f"{self.prefix}stats:entered"

    def durations(self, kind: str) -> str:
        return f"{self.prefix}stats:duration:{kind}"

    def worker(self, boot: str) -> str:
        """Heartbeat of one worker incarnation (a boot id; tests may use a hostname)."""
        return f"{self.prefix}worker:{boot}"

    def worker_jobs(self, boot: str) -> str:
        return f"{self.prefix}worker:{boot}:jobs"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def draining(self, hostname: str) -> str:
        return f"{self.prefix}worker:{hostname}:draining"
