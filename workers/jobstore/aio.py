"""The API's (async, redis.asyncio) side of the job store: submit with de-duplication, reads,
cancel, list pages, the events stream, counters and live workers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from workers.jobstore.keys import INDEX_MAX_ENTRIES, SUMMARY_FIELDS, JobKeys, now_iso
from workers.jobstore.records import (
    as_text,
    decode_payloads,
    decode_record,
    encode_fields,
    transition_args,
)
from workers.jobstore.scripts import CANCEL_LUA, REAP_LUA, RELEASE_LUA, SUBMIT_LUA, TRANSITION_LUA
from workers.names import ACTIVE_STATUSES, ALL_STATUSES


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
        return Submitted(as_text(outcome), as_text(jid))

    async def release_claim(self, dedup_key: str, job_id: str) -> bool:
        return bool(await self.r.eval(RELEASE_LUA, 1, self.keys.claim(dedup_key), job_id))

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return decode_record(await self.r.hgetall(self.keys.job(job_id)))

    async def transition(self, job_id: str, to: str, *, allowed_from: Sequence[str],
                         fields: Mapping[str, Any] | None = None) -> tuple[str, str]:
        claim_key = as_text(await self.r.hget(self.keys.job(job_id), "claim_key") or "")
        k, args = transition_args(self.keys, claim_key, job_id, to, allowed_from, fields,
                                   self.result_ttl_s)
        outcome, prev = await self.r.eval(TRANSITION_LUA, len(k), *k, *args)
        return as_text(outcome), as_text(prev)

    async def reap_if_worker_lost(self, job_id: str, worker: str, claim_key: str,
                                  problem: Mapping[str, Any], *, max_deliveries: int,
                                  boot: str | None = None) -> tuple[str, str]:
        """For a running job whose worker has no heartbeat (REAP_LUA): ``("requeued", gen)`` —
        back to queued under generation ``gen``, to be published again by the caller —, or
        ``("lost", deliveries)`` — failed with ``problem``, its deliveries used up —; else
        ``("alive", worker)`` or ``("refused", why)``. ``claim_key`` comes from the record the
        caller just read (one round trip, not two: this runs on every poll of a running job)."""
        k = self.keys
        boot = boot or worker
        outcome, detail = await self.r.eval(
            REAP_LUA, 6, k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id),
            claim_key, k.worker(boot), worker, now_iso(), self.result_ttl_s, job_id,
            json.dumps(dict(problem)), max_deliveries, boot)
        return as_text(outcome), as_text(detail)

    async def request_cancel(self, job_id: str) -> str:
        """``cancelled`` (it was queued), ``requested`` (running: flag set), ``missing``, or the
        terminal status it already had — decided and applied in one script (CANCEL_LUA)."""
        k = self.keys
        claim_key = as_text(await self.r.hget(k.job(job_id), "claim_key") or "")
        outcome, _ = await self.r.eval(
            CANCEL_LUA, 6, k.job(job_id), k.stats_current, k.stats_entered, k.events(job_id),
            claim_key, k.cancel(job_id), now_iso(), self.result_ttl_s, self.active_ttl_s, job_id)
        return as_text(outcome)

    async def page(self, *, before_seq: int | None, limit: int, statuses: set[str] | None,
                   kinds: set[str] | None, scan_max: int = 1000,
                   where: Callable[[dict[str, Any]], bool] | None = None
                   ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first. Returns summary records (no request, no result: HMGET of
        SUMMARY_FIELDS, not the whole hash) and the index score to continue from (or None).
        Scans at most ``scan_max`` index entries per call; filters (and ``where``, e.g. the
        tenant and labels) apply to what it scans."""
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
                        kinds is None or rec.get("kind") in kinds) and (
                        where is None or where(rec)):
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
        return [(as_text(eid), {as_text(a): as_text(b) for a, b in fields.items()}) for eid, fields in entries]

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
        """Heartbeat payloads of the worker incarnations that beat within ``ttl_s`` (the
        ``workers`` zset, then one MGET; never a SCAN of the keyspace)."""
        cutoff = int((time.time() - ttl_s) * 1000)
        boots = await self.r.zrangebyscore(self.keys.workers, cutoff, "+inf")
        if not boots:
            return []
        return decode_payloads(await self.r.mget([self.keys.worker(b) for b in boots]))

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
