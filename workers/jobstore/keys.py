"""The key layout of the job store in Redis, and the constants that size it.

One hash per job is the source of truth for its state (Celery calls every unknown id PENDING, so
its result backend is never read). State changes are Lua scripts, so that a cancel, a worker
starting and a worker finishing cannot interleave badly, and so that per-state counters stay
exact. The worker uses :class:`JobStore` (sync), the API :class:`AsyncJobStore` (redis.asyncio);
both share the key layout (:class:`JobKeys`) and the scripts.

Keys (``P`` is the configurable prefix, e.g. ``optim:``; ``T`` a tenant's hash tag, the first
8 hex digits of sha256(tenant), which every job id of that tenant starts with)::

    P job:{T}:id          hash: the job record
    P job:{T}:id:events   stream: status and progress events (SSE, resumable by stream id)
    P job:{T}:id:cancel   string: cooperative cancel flag polled by the running job
    P claim:{T}:hash      string: job id owning an identical request (SET NX; compare-and-delete)
    P tenant:{T}:name:index    zset: the tenant's job ids scored by creation time (ms × 1000 +
                          seq mod 1000, so ties within a millisecond keep submission order);
                          newest first. Trimmed on every submit of entries whose record must
                          have expired (older than active TTL + result TTL); the tenant's
                          oldest finished jobs are evicted beyond ``max_stored`` (EVICT_LUA)
    P tenant:{T}:name:seq      counter for the index's tie-break
    P tenant:{T}:name:active   hash: job id -> queued | running, for the tenant's jobs now
                          active (its length is the per-tenant cap, checked in SUBMIT_LUA)
    P tenant:{T}:name:current  hash: the tenant's jobs queued / running now
    P tenant:{T}:name:entered  hash: the tenant's jobs that entered each state, ever
    P tenants             set: tenant names that ever submitted (the metrics sum over them)
    P stats:duration:{kind} hash: duration histogram buckets (+ sum, count)
    P workers             zset: worker incarnation (boot id) -> last heartbeat (ms); members
                          stay after their beats stop until the reaper has handled their jobs
    P worker:{boot}       string with TTL: that incarnation's heartbeat payload (hostname,
                          boot, queues, pid, ts); its existence is the proof of life
    P worker:{boot}:jobs  set: jobs started by that incarnation (a hint for the reaper; the
                          record's ``boot`` decides)
    P worker:{hostname}:draining  string with TTL: the worker is shutting down; its running
                          jobs stop at their next step check and go back to the queue

Redis Cluster: the braces are literal hash tags. Every script touches keys of one tag ``{T}``
only — a job's keys, its claim and its tenant's counters, index and active set — so each state
change stays one atomic script, counters stay exact and the per-tenant caps are checked in the
same script that creates the job, on a cluster as on one Redis. The keys no script touches
(``tenants``, durations, worker heartbeats) are written with single-key commands.
``tests/integration/test_cluster_slots.py`` checks the slots of every script call, and runs the
store on a real three-node Redis Cluster.
"""


from __future__ import annotations

import hashlib
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
MAX_STORED_JOBS = 10_000  # per tenant (OPTIM_TENANT_MAX_STORED_JOBS)
DEFAULT_TENANT = "local"  # a record without a tenant (the API's open-mode tenant)
TAG_LEN = 8
INDEX_TIE_BREAK = 1000  # index score = creation ms * 1000 + seq % 1000 (exact in a double)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tenant_tag(tenant: str) -> str:
    """The hash tag shared by a tenant's keys (see the module docstring)."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:TAG_LEN]


def new_job_id(tenant: str = DEFAULT_TENANT) -> str:
    """32 hex digits: the tenant's tag, then 96 random bits. The id alone locates the job's
    keys (its slot), so workers and the reaper need nothing but the id."""
    return tenant_tag(tenant) + uuid.uuid4().hex[TAG_LEN:]


@dataclass(frozen=True)
class TenantKeys:
    """One tenant's keys, all under its hash tag."""

    index: str
    seq: str
    active: str
    current: str
    entered: str

    @property
    def counters(self) -> list[str]:
        """What every state change updates (KEYS after the record, in this order)."""
        return [self.current, self.entered, self.active]


@dataclass(frozen=True)
class JobKeys:
    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{{{job_id[:TAG_LEN]}}}:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.job(job_id)}:events"

    def cancel(self, job_id: str) -> str:
        return f"{self.job(job_id)}:cancel"

    def claim(self, job_id: str, dedup_key: str) -> str:
        """The claim of ``dedup_key``, under the tag of the tenant of ``job_id``."""
        return f"{self.prefix}claim:{{{job_id[:TAG_LEN]}}}:{dedup_key}"

    def no_claim(self, job_id: str) -> str:
        """A key in the job's slot that is never written: stands for "no claim" in scripts."""
        return f"{self.job(job_id)}:noclaim"

    def tenant(self, tenant: str) -> TenantKeys:
        base = f"{self.prefix}tenant:{{{tenant_tag(tenant)}}}:{tenant}"
        return TenantKeys(index=f"{base}:index", seq=f"{base}:seq", active=f"{base}:active",
                          current=f"{base}:current", entered=f"{base}:entered")

    @property
    def tenants(self) -> str:
        return f"{self.prefix}tenants"

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
