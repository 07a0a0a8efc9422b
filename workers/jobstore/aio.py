"""The API's (async, redis.asyncio) side of the job store: submit with de-duplication, reads,
cancel, list pages, the events stream, counters and live workers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from workers.jobstore.keys import (
    DEFAULT_TENANT,
    MAX_STORED_JOBS,
    SUMMARY_FIELDS,
    JobKeys,
    now_iso,
    tenant_tag,
)
from workers.jobstore.records import (
    as_text,
    decode_payloads,
    decode_record,
    encode_fields,
    record_tenant,
    state_keys,
    transition_args,
)
from workers.jobstore.scripts import (
    CANCEL_LUA,
    EVICT_LUA,
    FORGET_EXPIRED_LUA,
    REAP_LUA,
    RELEASE_LUA,
    REPUBLISH_LUA,
    SUBMIT_LUA,
    TRANSITION_LUA,
)
from workers.names import ACTIVE_STATUSES, ALL_STATUSES


@dataclass(frozen=True)
class Submitted:
    """``created`` a new job, found ``existing`` (the id of the job holding the claim), or
    ``full``: the tenant already has ``max_active`` jobs queued or running (``job_id`` is then
    how many)."""

    outcome: str
    job_id: str


class AsyncJobStore:
    def __init__(self, client: aioredis.Redis, prefix: str, *, result_ttl_s: int,
                 active_ttl_s: int, max_stored: int = MAX_STORED_JOBS,
                 clock: Callable[[], float] = time.time) -> None:
        self.r = client
        self.keys = JobKeys(prefix)
        self.result_ttl_s = result_ttl_s
        self.active_ttl_s = active_ttl_s
        self.max_stored = max_stored
        # A record lives at most active TTL (set at submit) + result TTL (set when it ends):
        # index entries older than that can only point at expired records.
        self.index_keep_s = active_ttl_s + result_ttl_s
        self.clock = clock

    async def submit(self, job_id: str, dedup_key: str, record: Mapping[str, Any], *,
                     force: bool, max_active: int = 0) -> Submitted:
        """Claim ``dedup_key`` and create the record atomically (or return the claim holder),
        refusing (``full``) when the tenant has ``max_active`` (> 0) jobs queued or running.
        ``job_id`` must come from ``new_job_id(tenant)``: it carries the tenant's hash tag.
        The stored-jobs cap is applied apart (:meth:`evict_beyond_cap`), once the new job's
        message is out: nothing may stand between creating a job and publishing it."""
        tenant = record_tenant(record.get("tenant"))
        if not job_id.startswith(tenant_tag(tenant)):
            raise ValueError(f"job id {job_id!r} does not carry the tag of tenant {tenant!r}")
        k = self.keys
        t = k.tenant(tenant)
        claim = k.claim(job_id, dedup_key)
        fields = {**record, "id": job_id, "tenant": tenant, "claim_key": claim,
                  "dedup_key": dedup_key, "created_at": record.get("created_at") or now_iso()}
        await self.r.sadd(k.tenants, tenant)  # idempotent, before: the metrics sum over these
        outcome, detail = await self.r.eval(
            SUBMIT_LUA, 8, *state_keys(k, job_id, tenant), claim, t.index, t.seq, job_id,
            self.active_ttl_s, self.active_ttl_s, "1" if force else "0", now_iso(),
            int(self.clock() * 1000), self.index_keep_s * 1000, max_active,
            *encode_fields(fields))
        sub = Submitted(as_text(outcome), as_text(detail))
        if sub.outcome == "full" and await self.forget_expired_active(tenant):
            return await self.submit(job_id, dedup_key, record, force=force,
                                     max_active=max_active)
        return sub

    async def evict_beyond_cap(self, tenant: str) -> int:
        """Delete the tenant's oldest finished jobs until it stores at most ``max_stored``
        (EVICT_LUA, one job at a time: each is atomic in its slot). Concurrent submitters may
        evict the same job; the second finds it gone. Returns how many were evicted."""
        t = self.keys.tenant(tenant)
        evicted = 0
        while (over := await self.r.zcard(t.index) - self.max_stored) > 0:
            # Queued and running jobs are skipped, so look past them (at most the active set).
            oldest = await self.r.zrange(t.index, 0, over + await self.r.hlen(t.active) - 1)
            claims = await self._claim_keys(oldest)
            n = 0
            for job_id, claim in zip(oldest, claims, strict=True):
                n += int(await self.r.eval(
                    EVICT_LUA, 5, self.keys.job(job_id), self.keys.events(job_id),
                    self.keys.cancel(job_id), t.index, claim or self.keys.no_claim(job_id),
                    job_id))
                if n == over:
                    break
            evicted += n
            if n == 0:  # all active: the active cap bounds them
                break
        return evicted

    async def forget_expired_active(self, tenant: str) -> int:
        """Drop the tenant's active entries whose record has expired (FORGET_EXPIRED_LUA)."""
        t = self.keys.tenant(tenant)
        ids = await self.r.hkeys(t.active)
        if not ids:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(self.keys.job(job_id))
        gone = [job_id for job_id, e in zip(ids, await pipe.execute(), strict=True) if not e]
        n = 0
        for job_id in gone:
            n += int(await self.r.eval(FORGET_EXPIRED_LUA, 3, self.keys.job(job_id), t.current,
                                       t.active, job_id))
        return n

    async def _claim_keys(self, job_ids: Sequence[str]) -> list[str]:
        pipe = self.r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "claim_key")
        return [as_text(c) if c else "" for c in await pipe.execute()]

    async def _owner(self, job_id: str) -> tuple[str, str]:
        """(claim key or '', tenant) of the record: the keys its scripts need besides its own."""
        claim, tenant = await self.r.hmget(self.keys.job(job_id), ["claim_key", "tenant"])
        return (as_text(claim) if claim else ""), record_tenant(tenant)

    async def release_claim(self, dedup_key: str, job_id: str) -> bool:
        return bool(await self.r.eval(RELEASE_LUA, 1, self.keys.claim(job_id, dedup_key),
                                      job_id))

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return decode_record(await self.r.hgetall(self.keys.job(job_id)))

    async def transition(self, job_id: str, to: str, *, allowed_from: Sequence[str],
                         fields: Mapping[str, Any] | None = None) -> tuple[str, str]:
        k, args = transition_args(self.keys, await self._owner(job_id), job_id, to,
                                   allowed_from, fields, self.result_ttl_s)
        outcome, prev = await self.r.eval(TRANSITION_LUA, len(k), *k, *args)
        return as_text(outcome), as_text(prev)

    async def reap_if_worker_lost(self, job_id: str, worker: str, claim_key: str,
                                  problem: Mapping[str, Any], *, max_deliveries: int,
                                  boot: str | None = None,
                                  tenant: str | None = None) -> tuple[str, str]:
        """For a running job whose worker has no heartbeat (REAP_LUA): ``("requeued", gen)`` —
        back to queued under generation ``gen``, to be published again by the caller —, or
        ``("lost", deliveries)`` — failed with ``problem``, its deliveries used up —; else
        ``("alive", worker)`` or ``("refused", why)``. ``claim_key`` comes from the record the
        caller just read (one round trip, not two: this runs on every poll of a running job), and
        so does ``tenant``. The heartbeat is read first, on its own: it lives in another slot,
        and an incarnation whose beat is gone never beats again (one that was only paused finds
        its job under a newer generation, and its writes refused)."""
        k = self.keys
        boot = boot or worker
        if await self.r.exists(k.worker(boot)):
            return "alive", worker
        outcome, detail = await self.r.eval(
            REAP_LUA, 6, *state_keys(k, job_id, record_tenant(tenant)),
            claim_key or k.no_claim(job_id), worker, now_iso(), self.result_ttl_s, job_id,
            json.dumps(dict(problem)), max_deliveries, boot)
        return as_text(outcome), as_text(detail)

    async def request_cancel(self, job_id: str) -> str:
        """``cancelled`` (it was queued), ``requested`` (running: flag set), ``missing``, or the
        terminal status it already had — decided and applied in one script (CANCEL_LUA)."""
        k = self.keys
        claim_key, tenant = await self._owner(job_id)
        outcome, _ = await self.r.eval(
            CANCEL_LUA, 7, *state_keys(k, job_id, tenant), claim_key or k.no_claim(job_id),
            k.cancel(job_id), now_iso(), self.result_ttl_s, self.active_ttl_s, job_id)
        return as_text(outcome)

    async def page(self, *, before_seq: int | None, limit: int, statuses: set[str] | None,
                   kinds: set[str] | None, tenant: str = DEFAULT_TENANT, scan_max: int = 1000,
                   where: Callable[[dict[str, Any]], bool] | None = None
                   ) -> tuple[list[dict[str, Any]], int | None]:
        """The tenant's jobs, newest first. Returns summary records (no request, no result: HMGET of
        SUMMARY_FIELDS, not the whole hash) and the index score to continue from (or None).
        Scans at most ``scan_max`` index entries per call; filters (and ``where``, e.g. the
        tenant and labels) apply to what it scans."""
        index = self.keys.tenant(tenant).index
        out: list[dict[str, Any]] = []
        top: str = f"({before_seq}" if before_seq is not None else "+inf"
        scanned = 0
        last_seq: int | None = None
        batch = max(limit * 2, 50)
        while len(out) < limit and scanned < scan_max:
            rows = await self.r.zrevrangebyscore(index, top, "-inf", start=0, num=batch,
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
                        kinds is None or rec.get("kind") in kinds) and (
                        where is None or where(rec)):
                    out.append(rec)
                    if len(out) == limit:
                        break
            if gone:  # records expired: drop them from the index
                await self.r.zrem(index, *gone)
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
        return [(as_text(eid), {as_text(a): as_text(b) for a, b in fields.items()}) for eid, fields in entries]

    async def state_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Jobs queued / running now and entered per state, summed over the tenants (each
        tenant's counters are exact: every script that moves a job updates them)."""
        tenants = sorted(as_text(t) for t in await self.r.smembers(self.keys.tenants))
        pipe = self.r.pipeline(transaction=False)
        for tenant in tenants:
            pipe.hgetall(self.keys.tenant(tenant).current)
            pipe.hgetall(self.keys.tenant(tenant).entered)
        rows = await pipe.execute() if tenants else []
        cur = dict.fromkeys(ACTIVE_STATUSES, 0)
        ent = dict.fromkeys(ALL_STATUSES, 0)
        for current, entered in zip(rows[::2], rows[1::2], strict=True):
            for s in ACTIVE_STATUSES:
                cur[s] += max(0, int(current.get(s, 0)))
            for s in ALL_STATUSES:
                ent[s] += int(entered.get(s, 0))
        return cur, ent

    async def durations(self, kind: str) -> dict[str, float]:
        raw = await self.r.hgetall(self.keys.durations(kind))
        return {k: float(v) for k, v in raw.items()}

    async def live_workers(self, ttl_s: float) -> list[dict[str, Any]]:
        """Heartbeat payloads of the worker incarnations that beat within ``ttl_s`` (the
        ``workers`` zset, then one MGET; never a SCAN of the keyspace)."""
        cutoff = int((time.time() - ttl_s) * 1000)
        boots = await self.r.zrangebyscore(self.keys.workers, cutoff, "+inf")
        if not boots:
            return []
        return decode_payloads(await self.r.mget([self.keys.worker(b) for b in boots]))

    async def queued_jobs(self) -> dict[str, dict[str, Any]]:
        """Every job queued now, over the tenants' active sets: id → its queue and generation,
        read from the record (not the request: this runs every sweep)."""
        k = self.keys
        tenants = [as_text(t) for t in await self.r.smembers(k.tenants)]
        pipe = self.r.pipeline(transaction=False)
        for tenant in tenants:
            pipe.hgetall(k.tenant(tenant).active)
        ids = [as_text(job_id) for active in (await pipe.execute() if tenants else [])
               for job_id, status in active.items() if as_text(status) == "queued"]
        fields = ("status", "queue", "generation")
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(k.job(job_id), fields)
        out: dict[str, dict[str, Any]] = {}
        for job_id, values in zip(ids, await pipe.execute() if ids else [], strict=True):
            status, queue, generation = (as_text(v) if v is not None else None for v in values)
            if status == "queued":  # the active set is a hint: the record decides
                out[job_id] = {"queue": queue, "generation": int(generation or 0)}
        return out

    async def republish_if_queued(self, job_id: str, generation: int) -> int | None:
        """A queued job whose message is lost gets a new generation (REPUBLISH_LUA): returns it,
        for the caller to publish; None when the job is no longer queued under ``generation``."""
        outcome, detail = await self.r.eval(REPUBLISH_LUA, 2, self.keys.job(job_id),
                                            self.keys.events(job_id), generation, now_iso())
        return int(as_text(detail)) if as_text(outcome) == "ok" else None

    async def dead_workers(self, ttl_s: float, limit: int = 100) -> list[str]:
        """Incarnations whose last beat is older than ``ttl_s`` (or that stopped cleanly)."""
        cutoff = int((time.time() - ttl_s) * 1000)
        return list(await self.r.zrangebyscore(self.keys.workers, "-inf", f"({cutoff}",
                                               start=0, num=limit))

    async def worker_jobs(self, boot: str) -> list[str]:
        return list(await self.r.smembers(self.keys.worker_jobs(boot)))

    async def forget_dead_worker(self, boot: str, done_job_ids: Sequence[str]) -> None:
        """Drop the jobs the reaper has handled; the incarnation itself once none is left, and
        only if it has not beaten again meanwhile (a paused process that came back)."""
        k = self.keys
        if done_job_ids:
            await self.r.srem(k.worker_jobs(boot), *done_job_ids)
        if not await self.r.scard(k.worker_jobs(boot)) and not await self.r.exists(
                k.worker(boot)):
            await self.r.zrem(k.workers, boot)
