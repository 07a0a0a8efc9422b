"""The job store against real Redis, without a worker: the index stays bounded, list pages read
summaries only, late writes never recreate an expired record, partial records read as missing,
and a cancel is decided and applied in one script."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from tests.jobs_support import Namespace, new_namespace
from workers.jobstore import AsyncJobStore, JobStore, new_job_id

pytestmark = pytest.mark.integration


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def ns() -> Iterator[Namespace]:
    namespace = new_namespace()
    yield namespace
    namespace.cleanup()


@pytest.fixture()
async def aclient(ns: Namespace) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(ns.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture()
def sync_store(ns: Namespace) -> Iterator[JobStore]:
    client = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    yield JobStore(client, ns.jobs_prefix, result_ttl_s=60)
    client.close()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def _submit(store: AsyncJobStore, **record: Any) -> str:
    job_id = new_job_id(record.get("tenant", "local"))
    sub = await store.submit(job_id, f"key-{job_id}", {"kind": "range_test", **record},
                             force=False)
    assert sub.outcome == "created"
    await store.evict_beyond_cap(record.get("tenant", "local"))  # as JobService does
    return job_id


@pytest.mark.anyio
async def test_index_drops_entries_older_than_a_record_can_live(
        ns: Namespace, aclient: aioredis.Redis) -> None:
    clock = Clock(1_700_000_000.0)
    # A record lives at most active TTL + result TTL = 61 s here.
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=1, active_ttl_s=60,
                          clock=clock)
    index = store.keys.tenant("local").index
    old = await _submit(store)
    assert await aclient.zrange(index, 0, -1) == [old]
    clock.t += 30
    mid = await _submit(store)
    clock.t += 32  # `old` is now 62 s old: its record has surely expired
    new = await _submit(store)
    assert await aclient.zrange(index, 0, -1) == [mid, new]

    more = []
    for _ in range(3):
        clock.t += 0.001
        more.append(await _submit(store))
    # Newest first, and the cursor (an index score) still pages without gaps or repeats.
    first, cursor = await store.page(before_seq=None, limit=2, statuses=None, kinds=None)
    assert [r["id"] for r in first] == more[::-1][:2] and cursor is not None
    rest, end = await store.page(before_seq=cursor, limit=5, statuses=None, kinds=None)
    assert [r["id"] for r in rest] == [more[0], new, mid] and end is None


@pytest.mark.anyio
async def test_a_tenant_stores_at_most_max_stored_jobs_oldest_finished_evicted_first(
        ns: Namespace, aclient: aioredis.Redis) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=600, active_ttl_s=600,
                          max_stored=3)
    index = store.keys.tenant("local").index
    running = await _submit(store)  # the oldest, but active: never evicted
    await store.transition(running, "running", allowed_from=["queued"])
    done = []
    for _ in range(2):
        job_id = await _submit(store)
        await store.transition(job_id, "succeeded", allowed_from=["queued"],
                               fields={"result": {}})
        done.append(job_id)
    assert await aclient.zcard(index) == 3
    newest = await _submit(store)  # 4 > 3: the oldest *finished* job goes, with its keys
    assert await aclient.zrange(index, 0, -1) == [running, done[1], newest]
    for key in (store.keys.job(done[0]), store.keys.events(done[0]),
                store.keys.claim(done[0], f"key-{done[0]}")):
        assert not await aclient.exists(key), key
    assert await store.get(running) is not None
    # Only active jobs left to evict: the store keeps them (the active cap bounds them).
    await store.request_cancel(done[1])
    more = [await _submit(store) for _ in range(2)]
    assert await aclient.zrange(index, 0, -1) == [running, newest, *more]
    other = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=600, active_ttl_s=600)
    assert await aclient.zcard(other.keys.tenant("other").index) == 0  # per tenant


@pytest.mark.anyio
async def test_the_active_cap_is_atomic_under_concurrent_submissions(ns: Namespace) -> None:
    """40 submissions at once, on 40 connections, for a tenant allowed 5 active jobs: exactly 5
    are created. (The old check-then-submit let simultaneous requests all pass.)"""
    import asyncio

    clients = [aioredis.Redis.from_url(ns.redis_url, decode_responses=True) for _ in range(40)]
    try:
        stores = [AsyncJobStore(c, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
                  for c in clients]
        await asyncio.gather(*(c.ping() for c in clients))  # connections open before the race

        async def one(store: AsyncJobStore) -> str:
            job_id = new_job_id("acme")
            sub = await store.submit(job_id, f"key-{job_id}",
                                     {"kind": "range_test", "tenant": "acme"},
                                     force=False, max_active=5)
            return sub.outcome

        outcomes = await asyncio.gather(*(one(s) for s in stores))
        assert sorted(outcomes) == ["created"] * 5 + ["full"] * 35
        current, _ = await stores[0].state_counts()
        assert current["queued"] == 5
        # An identical request still joins its job when the tenant is full.
        (created,) = [await _submit(stores[0], tenant="beta")]
        again = await stores[0].submit(new_job_id("beta"), f"key-{created}",
                                       {"kind": "range_test", "tenant": "beta"}, force=False,
                                       max_active=1)
        assert (again.outcome, again.job_id) == ("existing", created)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


@pytest.mark.anyio
async def test_an_active_record_that_expired_frees_its_place_in_the_cap(
        ns: Namespace, aclient: aioredis.Redis) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
    lost = await _submit(store)
    await aclient.delete(store.keys.job(lost))  # as if its active TTL ran out
    job_id = new_job_id()
    sub = await store.submit(job_id, "fresh", {"kind": "range_test"}, force=False,
                             max_active=1)
    assert sub.outcome == "created"
    current, _ = await store.state_counts()
    assert current["queued"] == 1  # the expired job no longer counts
    with pytest.raises(ValueError, match="tag"):
        await store.submit(new_job_id("acme"), "x", {"kind": "range_test"}, force=False)


@pytest.mark.anyio
async def test_list_pages_read_summaries_not_requests_or_results(
        ns: Namespace, aclient: aioredis.Redis) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
    job_id = await _submit(store, request={"big": "x" * 10_000}, labels={"team": "a"})
    await aclient.hset(store.keys.job(job_id), "result", '{"huge": [1, 2, 3]}')
    (rec,), _ = await store.page(before_seq=None, limit=5, statuses=None, kinds=None)
    assert rec["id"] == job_id and rec["labels"] == {"team": "a"} and rec["status"] == "queued"
    assert "request" not in rec and "result" not in rec
    full = await store.get(job_id)
    assert full is not None and full["result"] == {"huge": [1, 2, 3]}


@pytest.mark.anyio
async def test_late_writes_never_recreate_an_expired_record(
        ns: Namespace, aclient: aioredis.Redis, sync_store: JobStore) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
    gone = new_job_id()
    assert sync_store.progress(gone, {"step": 3, "total": 10, "lr": 0.1, "loss": 1.0}) is False
    assert await store.request_cancel(gone) == "missing"
    for key in (store.keys.job(gone), store.keys.events(gone), store.keys.cancel(gone)):
        assert not await aclient.exists(key), key

    live = await _submit(store)
    assert sync_store.progress(live, {"step": 3, "total": 10, "lr": 0.1, "loss": 1.0}) is True
    assert (await store.get(live) or {})["progress"]["step"] == 3


@pytest.mark.anyio
async def test_partial_or_corrupt_records_read_as_missing_not_as_errors(
        ns: Namespace, aclient: aioredis.Redis) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
    partial = new_job_id()
    await aclient.hset(store.keys.job(partial), mapping={"progress": '{"step": 1}',
                                                          "updated_at": "now"})
    assert await store.get(partial) is None
    corrupt = await _submit(store)
    await aclient.hset(store.keys.job(corrupt), mapping={"result": "{not json",
                                                          "deliveries": "many"})
    rec = await store.get(corrupt)
    assert rec is not None and rec["status"] == "queued"
    assert "result" not in rec and "deliveries" not in rec


@pytest.mark.anyio
async def test_cancel_is_decided_by_the_status_it_reads(
        ns: Namespace, aclient: aioredis.Redis, sync_store: JobStore) -> None:
    store = AsyncJobStore(aclient, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
    queued = await _submit(store)
    assert await store.request_cancel(queued) == "cancelled"
    rec = await store.get(queued)
    assert rec is not None and rec["status"] == "cancelled" and rec["finished_at"]
    assert not await aclient.exists(store.keys.claim(queued, f"key-{queued}"))  # key released
    assert await aclient.ttl(store.keys.job(queued)) <= 60

    running = await _submit(store)
    assert sync_store.begin(running, max_deliveries=3, worker="w", pid=1).action == "run"
    assert await store.request_cancel(running) == "requested"
    assert await aclient.exists(store.keys.cancel(running))
    assert (await store.get(running) or {})["cancel_requested"] is True

    finished = await _submit(store)
    sync_store.begin(finished, max_deliveries=3, worker="w", pid=1)
    sync_store.transition(finished, "succeeded", allowed_from=["running"], fields={"result": {}})
    # The flag is only ever set by the script that saw `running`: a finished job gets no flag
    # and the API answers 409.
    assert await store.request_cancel(finished) == "succeeded"
    assert not await aclient.exists(store.keys.cancel(finished))
    assert (await store.get(finished) or {})["cancel_requested"] is False
    current, _ = await store.state_counts()
    assert current == {"queued": 0, "running": 1}


def test_requeue_is_guarded_by_status_and_delivery(ns: Namespace, sync_store: JobStore) -> None:
    import anyio

    async def make() -> str:
        client = aioredis.Redis.from_url(ns.redis_url, decode_responses=True)
        try:
            return await _submit(AsyncJobStore(client, ns.jobs_prefix, result_ttl_s=60,
                                               active_ttl_s=600))
        finally:
            await client.aclose()

    job_id = anyio.run(make)
    assert sync_store.requeue(job_id, delivery=1, reason="t")[0] == "refused"  # still queued
    sync_store.begin(job_id, max_deliveries=3, worker="w", pid=1)
    assert sync_store.requeue(job_id, delivery=2, reason="t")[0] == "refused"  # not its delivery
    assert sync_store.requeue(job_id, delivery=1, reason="t") == ("ok", "0")
    rec = sync_store.get(job_id)
    assert rec is not None and rec["status"] == "queued" and rec["deliveries"] == 0
    assert "worker" not in rec
