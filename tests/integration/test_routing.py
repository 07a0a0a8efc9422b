"""Device → queue: cpu and cuda are fixed; auto uses the gpu queue only while a live worker
consumes it (a fresh heartbeat in the ``workers`` zset), else cpu. Real Redis, no worker needed.
Live workers are read without SCAN, and stale members are pruned."""

from __future__ import annotations

import json
import time

import anyio
import pytest
import redis.asyncio as aioredis

from app.core.problems import ProblemError
from app.services.publish import choose_queue
from tests.jobs_support import new_namespace
from workers.jobstore import AsyncJobStore, JobKeys

pytestmark = pytest.mark.integration


def test_auto_routes_to_gpu_only_with_a_live_gpu_worker() -> None:
    ns = new_namespace()

    async def go() -> list[tuple[str, str]]:
        client = aioredis.Redis.from_url(ns.redis_url, decode_responses=True)
        store = AsyncJobStore(client, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
        keys = JobKeys(ns.jobs_prefix)

        async def beat(host: str, queues: list[str], ts: float) -> None:
            await client.set(keys.worker(host), json.dumps(
                {"hostname": host, "queues": queues, "ts": ts}), ex=30)
            await client.zadd(keys.workers, {host: int(ts * 1000)})

        out = [await choose_queue("auto", store, 30), await choose_queue("cpu", store, 30)]
        with pytest.raises(ProblemError) as refused:  # no GPU worker: refused, not parked
            await choose_queue("cuda", store, 30)
        assert refused.value.status == 422 and "no-gpu-worker" in refused.value.type
        assert refused.value.extensions["errors"][0]["field"] == "body.device"
        await beat("w-cpu@h", ["cpu"], time.time())
        out.append(await choose_queue("auto", store, 30))
        await beat("w-gpu@h", ["gpu"], time.time() - 120)
        out.append(await choose_queue("auto", store, 30))  # stale heartbeat: not live
        # A stale incarnation stays in the zset until the reaper has handled its jobs.
        kept = await client.zscore(keys.workers, "w-gpu@h") is not None
        await beat("w-gpu@h", ["gpu"], time.time())
        out.append(await choose_queue("auto", store, 30))
        out.append(await choose_queue("cuda", store, 30))
        # A payload key without a zset member is invisible: readers never SCAN for keys.
        await client.set(keys.worker("w-orphan@h"), json.dumps(
            {"hostname": "w-orphan@h", "queues": ["gpu"], "ts": time.time()}), ex=30)
        hosts = sorted(w["hostname"] for w in await store.live_workers(30))
        await client.aclose()
        assert kept, "a stale worker left the zset before the reaper saw it"
        assert hosts == ["w-cpu@h", "w-gpu@h"], hosts
        return out

    try:
        got = anyio.run(go)
    finally:
        ns.cleanup()
    assert got == [("cpu", "cpu"), ("cpu", "cpu"), ("cpu", "cpu"), ("cpu", "cpu"),
                   ("gpu", "cuda"), ("gpu", "cuda")]
