"""Job records, claims, progress, cancel flags and events in Redis (no torch, no Celery).

One hash per job is the source of truth for its state (Celery calls every unknown id PENDING, so
its result backend is never read). State changes are Lua scripts, so that a cancel, a worker
starting and a worker finishing cannot interleave badly, and so that per-state counters stay
exact. The worker uses :class:`JobStore` (sync), the API :class:`AsyncJobStore` (redis.asyncio);
both share the key layout (:class:`JobKeys`) and the scripts.

Keys (``P`` is the configurable prefix, e.g. ``optim:``)::

    P job:{id}            hash: the job record
    P job:{id}:events     stream: status and progress events (SSE, resumable by stream id)
    P job:{id}:cancel     string: cooperative cancel flag polled by the running job
    P claim:{hash}        string: job id owning an identical request (SET NX; compare-and-delete)
    P jobs:index          zset: job ids scored by creation time (ms × 1000 + seq mod 1000, so
                          ties within a millisecond keep submission order); newest first. Trimmed
                          on every submit: entries whose record must have expired (older than
                          active TTL + result TTL) and all but the newest ``index_max`` entries
    P jobs:seq            counter for the index's tie-break
    P stats:current       hash: jobs queued / running now
    P stats:entered       hash: jobs that entered each state, ever
    P stats:duration:{kind} hash: duration histogram buckets (+ sum, count)
    P workers             zset: hostname -> last heartbeat (ms); stale members pruned on read
    P worker:{hostname}   string with TTL: that worker's heartbeat payload (queues, pid, ts)
    P worker:{hostname}:draining  string with TTL: the worker is shutting down; its running
                          jobs stop at their next step check and go back to the queue
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from workers.names import ACTIVE_STATUSES, ALL_STATUSES, TERMINAL_STATUSES

EVENTS_MAXLEN = 2000
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
JSON_FIELDS = ("request", "labels", "progress", "result", "problem")
INT_FIELDS = ("deliveries", "seq", "priority", "pid", "generation")
# A hash without these is not a job record (a partial write, or a late HSET after expiry).
REQUIRED_FIELDS = ("id", "kind", "status")
# What a list page shows: everything but the request and the result (they can be large).
SUMMARY_FIELDS = ("id", "kind", "status", "queue", "device", "priority", "labels", "request_id",
                  "created_at", "started_at", "finished_at", "updated_at", "deliveries",
                  "cancel_requested", "progress", "problem", "generation", "worker")
INDEX_MAX_ENTRIES = 100_000
INDEX_TIE_BREAK = 1000  # index score = creation ms * 1000 + seq % 1000 (exact in a double)

log = logging.getLogger("workers.jobstore")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class JobKeys:
    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:events"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:cancel"

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

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}worker:{hostname}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def draining(self, hostname: str) -> str:
        return f"{self.prefix}worker:{hostname}:draining"


# --- Lua ---------------------------------------------------------------------------------------
# Shared by transitions: move `cur` -> `to`, keep the counters exact, append a status event.
_LUA_MOVE = """
local function move(rec, cur_key, ent_key, ev_key, cur, to, now)
  redis.call('HSET', rec, 'status', to, 'updated_at', now)
  if cur ~= to then
    if cur == 'queued' or cur == 'running' then redis.call('HINCRBY', cur_key, cur, -1) end
    if to == 'queued' or to == 'running' then redis.call('HINCRBY', cur_key, to, 1) end
    redis.call('HINCRBY', ent_key, to, 1)
  end
end
"""

# KEYS: claim, record, index, seq, stats_current, stats_entered, events
# ARGV: job_id, claim_ttl, record_ttl, force ('1'|'0'), now, now_ms, index_keep_ms, index_max,
#       field, value, ...
# The index is trimmed here, on the only path that grows it, so it stays bounded without a
# janitor: entries created more than index_keep_ms ago (their record has surely expired) and
# everything beyond the newest index_max entries.
SUBMIT_LUA = _LUA_MOVE + """
if ARGV[4] ~= '1' then
  local cur = redis.call('GET', KEYS[1])
  if cur then return {'existing', cur} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
local seq = redis.call('INCR', KEYS[4])
local now_ms = tonumber(ARGV[6])
local score = now_ms * 1000 + (seq % 1000)
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'seq', seq, 'deliveries', 0, unpack(fields))
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('HINCRBY', KEYS[6], 'queued', 1)
redis.call('HSET', KEYS[2], 'status', 'queued', 'updated_at', ARGV[5])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('ZADD', KEYS[3], score, ARGV[1])
local oldest = string.format('%.0f', (now_ms - tonumber(ARGV[7])) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. oldest)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[8]) + 1))
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued'}))
redis.call('EXPIRE', KEYS[7], tonumber(ARGV[3]))
return {'created', ARGV[1]}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or '')
# ARGV: allowed_from (comma list), to, now, ttl (0: keep), release_claim ('1'|'0'),
#       claim_ttl (0: keep), job_id, generation ('': any), field, value, ...
# A writer that names its generation (a worker, for the delivery it runs) is refused once the job
# has been handed to a newer one (REAP_LUA): a run that was wrongly taken for lost must not
# overwrite the record of the run that replaced it.
TRANSITION_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {'refused', cur} end
if ARGV[8] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
    ~= tonumber(ARGV[8]) then
  return {'refused', 'superseded'}
end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, ARGV[2], ARGV[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = ARGV[2]}))
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
end
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[7] then
  if ARGV[5] == '1' then redis.call('DEL', KEYS[5])
  elseif tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[6])) end
end
return {'ok', cur}
"""

# KEYS: record, stats_current, stats_entered, events
# ARGV: max_deliveries, now, worker, pid, generation (of the message)
# A message older than the record's generation is the original of a job that REAP_LUA re-queued
# (the broker restores it after its visibility timeout): the job has a newer message, skip it.
BEGIN_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', '0'} end
if cur ~= 'queued' and cur ~= 'running' then return {'skip', cur} end
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') then
  return {'skip', 'stale'}
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if n > tonumber(ARGV[1]) then return {'exhausted', tostring(n)} end
redis.call('HSET', KEYS[1], 'started_at', ARGV[2], 'worker', ARGV[3], 'pid', ARGV[4])
redis.call('HSETNX', KEYS[1], 'first_started_at', ARGV[2])
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'running', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'running', delivery = n}))
return {'run', tostring(n)}
"""

# KEYS: record, stats_current, stats_entered, events
# ARGV: delivery, now, reason
# A worker that is shutting down hands its running job back: running -> queued, and the delivery
# it used is not counted (the job did not fail its worker). Guarded by the status and by the
# delivery number, so a stale worker cannot requeue a job that another delivery already owns.
REQUEUE_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
if cur ~= 'running' then return {'refused', cur} end
local n = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
if n ~= tonumber(ARGV[1]) then return {'refused', 'delivery ' .. tostring(n)} end
redis.call('HINCRBY', KEYS[1], 'deliveries', -1)
redis.call('HDEL', KEYS[1], 'worker', 'pid')
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'queued', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued', reason = ARGV[3]}))
return {'ok', tostring(n - 1)}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or ''), cancel flag
# ARGV: now, result_ttl, flag_ttl, job_id
# One script decides from the status it reads: a queued job is cancelled at once, a running one
# gets its flag, anything else is reported as is. Setting the flag in the same script means a job
# that finishes "in between" cannot be answered 202 (the old check-then-set had that window), and
# a record that has expired is never recreated by a late HSET.
CANCEL_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
if cur == 'queued' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
  move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'cancelled', ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'cancelled'}))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]))
  if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[4] then redis.call('DEL', KEYS[5]) end
  return {'cancelled', cur}
end
if cur == 'running' then
  redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return {'requested', cur}
end
return {cur, cur}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or ''), the worker's heartbeat key
# ARGV: worker hostname, now, result_ttl, job_id, problem JSON, max_deliveries
# A running job whose worker stopped beating (its machine or main process is gone: no drain, no
# requeue) would otherwise show "running" until the broker's visibility timeout (over an hour)
# restores its message. Instead it goes back to "queued" under a new generation, and the caller
# publishes a new message for that generation at once; the delivery the lost worker used stays
# counted, so a job that keeps killing whole workers still fails after max_deliveries — then it
# is failed here (with ``problem``), freeing its claim. Guarded by the status and by the worker
# hostname, so a job that another delivery has since picked up is left alone. The old message,
# when the broker restores it, is older than the record's generation: BEGIN_LUA skips it.
REAP_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur ~= 'running' then return {'refused', cur or ''} end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return {'refused', 'moved'} end
if redis.call('EXISTS', KEYS[6]) == 1 then return {'alive', ARGV[1]} end
local n = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
if n < tonumber(ARGV[6]) then
  local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HDEL', KEYS[1], 'worker', 'pid')
  move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'queued', ARGV[2])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'queued', reason = 'worker-lost'}))
  return {'requeued', tostring(gen)}
end
redis.call('HSET', KEYS[1], 'problem', ARGV[5], 'finished_at', ARGV[2])
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'failed', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'failed'}))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[4] then redis.call('DEL', KEYS[5]) end
return {'lost', tostring(n)}
"""

# KEYS: record, events; ARGV: progress JSON, now
# Only while the record exists: a late progress write must not recreate an expired hash (it would
# then live forever, without a TTL and without the fields a job record needs).
PROGRESS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'event', 'progress', 'data', ARGV[1])
return 1
"""

# KEYS: claim; ARGV: job_id — delete the claim only if it still belongs to this job.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- plain data in and out ---------------------------------------------------------------------
def encode_fields(values: Mapping[str, Any]) -> list[str]:
    """Flatten a mapping into HSET arguments; JSON-encode structured values, drop None."""
    out: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if key in JSON_FIELDS or isinstance(value, (dict, list)):
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        out += [key, text]
    return out


def decode_record(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """The record as plain data, or None when ``raw`` is not a whole job record (missing, or a
    hash without its required fields): callers answer 404 rather than fail on it. A field that
    does not decode is dropped (and logged) instead of failing the whole record."""
    if not raw or any(not raw.get(k) for k in REQUIRED_FIELDS):
        if raw:
            log.warning("ignoring a partial job record", extra={"fields": sorted(raw)[:20]})
        return None
    rec: dict[str, Any] = dict(raw)
    for key in (*JSON_FIELDS, *INT_FIELDS):
        if key not in rec:
            continue
        try:
            rec[key] = json.loads(rec[key]) if key in JSON_FIELDS else int(rec[key])
        except ValueError:
            log.warning("dropping an undecodable job field",
                        extra={"job_id": rec.get("id"), "field": key})
            del rec[key]
    rec["cancel_requested"] = rec.get("cancel_requested") == "1"
    return rec


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def progress_doc(event: Any) -> dict[str, Any]:
    """A ProgressEvent (pydantic model, dataclass or mapping) as plain JSON-safe data."""
    if hasattr(event, "model_dump"):
        data = event.model_dump()
    elif isinstance(event, Mapping):
        data = dict(event)
    else:
        data = {k: getattr(event, k, None) for k in ("step", "total", "lr", "loss")}
    return {"step": int(data.get("step") or 0), "total": int(data.get("total") or 0),
            "lr": _finite(data.get("lr")), "loss": _finite(data.get("loss"))}


def _status_csv(statuses: Sequence[str]) -> str:
    return ",".join(statuses)


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
              generation: int = 0) -> Begin:
        k = self.keys
        action, detail = self._begin(
            keys=[k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id)],
            args=[max_deliveries, now_iso(), worker, pid, generation])
        return Begin(_s(action), _s(detail))

    def transition(self, job_id: str, to: str, *, allowed_from: Sequence[str],
                   fields: Mapping[str, Any] | None = None,
                   generation: int | None = None) -> tuple[str, str]:
        """Move the job to ``to`` if its status is in ``allowed_from`` and, when ``generation``
        is given, the job still belongs to that generation (see TRANSITION_LUA)."""
        return _transition_call(self._transition, self.keys, self.get_claim_key(job_id), job_id,
                                to, allowed_from, fields, self.result_ttl_s, generation)

    def get_claim_key(self, job_id: str) -> str:
        return _s(self.r.hget(self.keys.job(job_id), "claim_key") or "")

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
            keys=[k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id)],
            args=[delivery, now_iso(), reason])
        return _s(outcome), _s(detail)

    def observe_duration(self, kind: str, seconds: float) -> None:
        key = self.keys.durations(kind)
        pipe = self.r.pipeline(transaction=False)
        for le in DURATION_BUCKETS:
            if seconds <= le:
                pipe.hincrby(key, f"le:{le:g}", 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.execute()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _transition_args(keys: JobKeys, claim_key: str, job_id: str, to: str,
                     allowed_from: Sequence[str], fields: Mapping[str, Any] | None,
                     result_ttl_s: int, generation: int | None = None
                     ) -> tuple[list[str], list[Any]]:
    terminal = to in TERMINAL_STATUSES
    release = to in ("failed", "cancelled")
    extra = dict(fields or {})
    if terminal:
        extra.setdefault("finished_at", now_iso())
    args: list[Any] = [_status_csv(allowed_from), to, now_iso(),
                       result_ttl_s if terminal else 0, "1" if release else "0",
                       result_ttl_s if to == "succeeded" else 0, job_id,
                       "" if generation is None else generation, *encode_fields(extra)]
    k = [keys.job(job_id), keys.stats_current, keys.stats_entered, keys.events(job_id), claim_key]
    return k, args


def _transition_call(script: Any, keys: JobKeys, claim_key: str, job_id: str, to: str,
                     allowed_from: Sequence[str], fields: Mapping[str, Any] | None,
                     result_ttl_s: int, generation: int | None = None) -> tuple[str, str]:
    k, args = _transition_args(keys, claim_key, job_id, to, allowed_from, fields, result_ttl_s,
                               generation)
    outcome, prev = script(keys=k, args=args)
    return _s(outcome), _s(prev)


# --- the API's (async) store -------------------------------------------------------------------
@dataclass(frozen=True)
class Submitted:
    """``created`` a new job, or found ``existing`` (the id of the job holding the claim)."""

    outcome: str
    job_id: str


class AsyncJobStore:
    def __init__(self, client: aioredis.Redis, prefix: str, *, result_ttl_s: int,
                 active_ttl_s: int, index_max: int = INDEX_MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.r = client
        self.keys = JobKeys(prefix)
        self.result_ttl_s = result_ttl_s
        self.active_ttl_s = active_ttl_s
        self.index_max = index_max
        # A record lives at most active TTL (set at submit) + result TTL (set when it ends):
        # index entries older than that can only point at expired records.
        self.index_keep_s = active_ttl_s + result_ttl_s
        self.clock = clock

    async def submit(self, job_id: str, dedup_key: str, record: Mapping[str, Any], *,
                     force: bool) -> Submitted:
        """Claim ``dedup_key`` and create the record atomically (or return the claim holder)."""
        k = self.keys
        fields = {**record, "id": job_id, "claim_key": k.claim(dedup_key),
                  "dedup_key": dedup_key, "created_at": record.get("created_at") or now_iso()}
        outcome, jid = await self.r.eval(
            SUBMIT_LUA, 7, k.claim(dedup_key), k.job(job_id), k.index, k.seq, k.stats_current,
            k.stats_entered, k.events(job_id), job_id, self.active_ttl_s, self.active_ttl_s,
            "1" if force else "0", now_iso(), int(self.clock() * 1000), self.index_keep_s * 1000,
            self.index_max, *encode_fields(fields))
        return Submitted(_s(outcome), _s(jid))

    async def release_claim(self, dedup_key: str, job_id: str) -> bool:
        return bool(await self.r.eval(RELEASE_LUA, 1, self.keys.claim(dedup_key), job_id))

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return decode_record(await self.r.hgetall(self.keys.job(job_id)))

    async def transition(self, job_id: str, to: str, *, allowed_from: Sequence[str],
                         fields: Mapping[str, Any] | None = None) -> tuple[str, str]:
        claim_key = _s(await self.r.hget(self.keys.job(job_id), "claim_key") or "")
        k, args = _transition_args(self.keys, claim_key, job_id, to, allowed_from, fields,
                                   self.result_ttl_s)
        outcome, prev = await self.r.eval(TRANSITION_LUA, len(k), *k, *args)
        return _s(outcome), _s(prev)

    async def reap_if_worker_lost(self, job_id: str, worker: str, claim_key: str,
                                  problem: Mapping[str, Any], *, max_deliveries: int
                                  ) -> tuple[str, str]:
        """For a running job whose worker has no heartbeat (REAP_LUA): ``("requeued", gen)`` —
        back to queued under generation ``gen``, to be published again by the caller —, or
        ``("lost", deliveries)`` — failed with ``problem``, its deliveries used up —; else
        ``("alive", worker)`` or ``("refused", why)``. ``claim_key`` comes from the record the
        caller just read (one round trip, not two: this runs on every poll of a running job)."""
        k = self.keys
        outcome, detail = await self.r.eval(
            REAP_LUA, 6, k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id),
            claim_key, k.worker(worker), worker, now_iso(), self.result_ttl_s, job_id,
            json.dumps(dict(problem)), max_deliveries)
        return _s(outcome), _s(detail)

    async def request_cancel(self, job_id: str) -> str:
        """``cancelled`` (it was queued), ``requested`` (running: flag set), ``missing``, or the
        terminal status it already had — decided and applied in one script (CANCEL_LUA)."""
        k = self.keys
        claim_key = _s(await self.r.hget(k.job(job_id), "claim_key") or "")
        outcome, _ = await self.r.eval(
            CANCEL_LUA, 6, k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id),
            claim_key, k.cancel(job_id), now_iso(), self.result_ttl_s, self.active_ttl_s, job_id)
        return _s(outcome)

    async def page(self, *, before_seq: int | None, limit: int, statuses: set[str] | None,
                   kinds: set[str] | None, scan_max: int = 1000
                   ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first. Returns summary records (no request, no result: HMGET of
        SUMMARY_FIELDS, not the whole hash) and the index score to continue from (or None).
        Scans at most ``scan_max`` index entries per call; filters apply to what it scans."""
        out: list[dict[str, Any]] = []
        top: str = f"({before_seq}" if before_seq is not None else "+inf"
        scanned = 0
        last_seq: int | None = None
        batch = max(limit * 2, 50)
        while len(out) < limit and scanned < scan_max:
            rows = await self.r.zrevrangebyscore(self.keys.index, top, "-inf", start=0, num=batch,
                                                 withscores=True)
            if not rows:
                return out, None
            pipe = self.r.pipeline(transaction=False)
            for job_id, _ in rows:
                pipe.hmget(self.keys.job(job_id), SUMMARY_FIELDS)
            raws = await pipe.execute()
            gone: list[str] = []
            for (job_id, score), values in zip(rows, raws, strict=True):
                scanned += 1
                last_seq = int(score)
                rec = decode_record({f: v for f, v in zip(SUMMARY_FIELDS, values, strict=True)
                                     if v is not None})
                if rec is None:
                    gone.append(job_id)
                elif (statuses is None or rec["status"] in statuses) and (
                        kinds is None or rec.get("kind") in kinds):
                    out.append(rec)
                    if len(out) == limit:
                        break
            if gone:  # records expired: drop them from the index
                await self.r.zrem(self.keys.index, *gone)
            top = f"({last_seq}"
            if len(rows) < batch and len(out) < limit:
                return out, None
        return out, last_seq

    async def events(self, job_id: str, after: str, *, block_ms: int,
                     count: int = 100) -> list[tuple[str, dict[str, str]]]:
        res = await self.r.xread({self.keys.events(job_id): after}, block=block_ms, count=count)
        if not res:
            return []
        _, entries = res[0]
        return [(_s(eid), {_s(a): _s(b) for a, b in fields.items()}) for eid, fields in entries]

    async def state_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.stats_current)
        pipe.hgetall(self.keys.stats_entered)
        current, entered = await pipe.execute()
        cur = {s: max(0, int(current.get(s, 0))) for s in ACTIVE_STATUSES}
        ent = {s: int(entered.get(s, 0)) for s in ALL_STATUSES}
        return cur, ent

    async def durations(self, kind: str) -> dict[str, float]:
        raw = await self.r.hgetall(self.keys.durations(kind))
        return {k: float(v) for k, v in raw.items()}

    async def live_workers(self, ttl_s: float) -> list[dict[str, Any]]:
        """Heartbeat payloads of the workers that beat within ``ttl_s`` (the ``workers`` zset,
        then one MGET; never a SCAN of the keyspace). Stale members are pruned on the way."""
        cutoff = int((time.time() - ttl_s) * 1000)
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(self.keys.workers, "-inf", f"({cutoff}")
        pipe.zrangebyscore(self.keys.workers, cutoff, "+inf")
        _, hostnames = await pipe.execute()
        if not hostnames:
            return []
        return _payloads(await self.r.mget([self.keys.worker(h) for h in hostnames]))


def _payloads(values: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in values:
        if v:
            try:
                out.append(json.loads(v))
            except ValueError:
                continue
    return out


# --- worker heartbeats (sync: the worker's main process and the container health check) -------
def write_heartbeat(client: redis.Redis, keys: JobKeys, hostname: str,
                    payload: Mapping[str, Any], ttl_s: int) -> None:
    """The payload key (with a TTL) and the hostname's score in the ``workers`` zset."""
    now = time.time()
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.worker(hostname), json.dumps({**payload, "ts": now}), ex=ttl_s)
    pipe.zadd(keys.workers, {hostname: int(now * 1000)})
    pipe.execute()


def forget_worker(client: redis.Redis, keys: JobKeys, hostname: str) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.worker(hostname))
    pipe.zrem(keys.workers, hostname)
    pipe.execute()


def live_worker_payloads(client: redis.Redis, keys: JobKeys, ttl_s: float
                         ) -> list[dict[str, Any]]:
    """Sync twin of :meth:`AsyncJobStore.live_workers` (read-only: no pruning)."""
    cutoff = int((time.time() - ttl_s) * 1000)
    hostnames = [_s(h) for h in client.zrangebyscore(keys.workers, cutoff, "+inf")]
    return _payloads(client.mget([keys.worker(h) for h in hostnames])) if hostnames else []


def heartbeat_age_ok(beat: Mapping[str, Any], ttl_s: float) -> bool:
    return time.time() - float(beat.get("ts", 0)) <= ttl_s
